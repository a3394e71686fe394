using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace JobWorker.Pki.Tests;

public sealed class RevocationListTests
{
    [Fact]
    public void Read_CrlOfTheCaInPemAndDer_ListsExactlyItsSerials()
    {
        using var ca = CertificateAuthority.Create();
        using var revoked = ca.IssueClient(new ClientIdentity("alice", Roles.User));
        using var kept = ca.IssueClient(new ClientIdentity("bob", Roles.User));
        var next = DateTimeOffset.UtcNow.AddDays(1);
        var der = Build(ca, next, revoked);

        var fromDer = RevocationList.Read(der, ca.Certificate);
        var fromPem = RevocationList.Read(System.Text.Encoding.ASCII.GetBytes(PemEncoding.WriteString("X509 CRL", der)), ca.Certificate);

        Assert.Equal([RevocationList.NormalizeSerial(revoked.SerialNumberBytes.Span)], fromDer.Serials);
        Assert.Equal(fromDer.Serials, fromPem.Serials);
        Assert.DoesNotContain(RevocationList.NormalizeSerial(kept.SerialNumberBytes.Span), fromDer.Serials);
        Assert.Equal(next.ToUnixTimeSeconds(), fromDer.NextUpdate!.Value.ToUnixTimeSeconds());
    }

    [Fact]
    public void Read_CrlSignedByAnotherKeyWithTheSameName_RefusedForItsSignature()
    {
        using var ca = CertificateAuthority.Create("JobWorker Development CA");
        using var forger = CertificateAuthority.Create("JobWorker Development CA");
        using var victim = ca.IssueClient(new ClientIdentity("alice", Roles.User));

        var e = Assert.Throws<PkiException>(() => RevocationList.Read(Build(forger, DateTimeOffset.UtcNow.AddDays(1), victim), ca.Certificate));

        Assert.Contains("signature does not verify", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_CrlOfAnotherIssuerOrNotACrl_RefusedNamingTheProblem()
    {
        using var ca = CertificateAuthority.Create("JobWorker Development CA");
        using var other = CertificateAuthority.Create("Other CA");

        var issuer = Assert.Throws<PkiException>(() => RevocationList.Read(Build(other, DateTimeOffset.UtcNow.AddDays(1)), ca.Certificate));
        var certificate = Assert.Throws<PkiException>(() => RevocationList.Read(System.Text.Encoding.ASCII.GetBytes(ca.Certificate.ExportCertificatePem()), ca.Certificate));
        var garbage = Assert.Throws<PkiException>(() => RevocationList.Read([0x30, 0x03, 0x02, 0x01], ca.Certificate));

        Assert.StartsWith("the CRL was issued by '", issuer.Message, StringComparison.Ordinal);
        Assert.Contains("CN=Other CA", issuer.Message, StringComparison.Ordinal);
        Assert.Contains("no \"X509 CRL\" block", certificate.Message, StringComparison.Ordinal);
        Assert.Contains("not a valid X.509 CRL", garbage.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("00:a1:B2", "A1B2")]
    [InlineData("a1b2", "A1B2")]
    [InlineData(" 0A 1b ", "A1B")]
    [InlineData("00", "0")]
    [InlineData("serial=0A1B", "A1B")]
    [InlineData("xyz", null)]
    [InlineData("", null)]
    public void NormalizeSerial_Text_UpperCaseWithoutSeparatorsOrLeadingZeros(string text, string? expected)
        => Assert.Equal(expected, RevocationList.NormalizeSerial(text));

    [Fact]
    public void NormalizeSerial_CertificateBytesAndItsHexText_Agree()
    {
        using var ca = CertificateAuthority.Create();
        using var certificate = ca.IssueClient(new ClientIdentity("alice", Roles.User));

        Assert.Equal(RevocationList.NormalizeSerial(certificate.SerialNumber), RevocationList.NormalizeSerial(certificate.SerialNumberBytes.Span));
        Assert.Equal("1", RevocationList.NormalizeSerial([0x00, 0x01]));
    }

    private static byte[] Build(CertificateAuthority ca, DateTimeOffset nextUpdate, params X509Certificate2[] revoked)
    {
        var builder = new CertificateRevocationListBuilder();
        foreach (var certificate in revoked)
        {
            builder.AddEntry(certificate, DateTimeOffset.UtcNow.AddMinutes(-1), X509RevocationReason.KeyCompromise);
        }

        return builder.Build(ca.Certificate, BigInteger.One, nextUpdate, HashAlgorithmName.SHA256);
    }
}
