using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace JobWorker.Pki.Tests;

public sealed class CertificateTrustTests
{
    private static readonly ClientIdentity Alice = new("alice", Roles.User);

    [Fact]
    public void Verify_ValidClient_ReturnsNull()
    {
        using var ca = CertificateAuthority.Create();
        using var cert = ca.IssueClient(Alice);

        Assert.Null(CertificateTrust.Verify(cert, ca.Certificate, Oids.ClientAuthentication));
    }

    [Fact]
    public void Verify_OtherCa_Refused()
    {
        using var ca = CertificateAuthority.Create();
        using var other = CertificateAuthority.Create("Another CA");
        using var cert = other.IssueClient(Alice);

        Assert.NotNull(CertificateTrust.Verify(cert, ca.Certificate, Oids.ClientAuthentication));
    }

    [Fact]
    public void Verify_Expired_RefusedAsNotTimeValid()
    {
        using var ca = CertificateAuthority.Create(options: new CertificateOptions { NotBefore = DateTimeOffset.UtcNow.AddDays(-30) });
        using var cert = ca.IssueClient(Alice, new CertificateOptions
        {
            NotBefore = DateTimeOffset.UtcNow.AddDays(-10),
            NotAfter = DateTimeOffset.UtcNow.AddDays(-1),
        });

        var reason = CertificateTrust.Verify(cert, ca.Certificate, Oids.ClientAuthentication);

        Assert.NotNull(reason);
        Assert.Contains("NotTimeValid", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_NotYetValid_RefusedAsNotTimeValid()
    {
        using var ca = CertificateAuthority.Create();
        using var cert = ca.IssueClient(Alice, new CertificateOptions { NotBefore = DateTimeOffset.UtcNow.AddDays(1) });

        var reason = CertificateTrust.Verify(cert, ca.Certificate, Oids.ClientAuthentication);

        Assert.NotNull(reason);
        Assert.Contains("NotTimeValid", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_NoExtendedKeyUsage_RefusedAsNotValidForUsage()
    {
        using var ca = CertificateAuthority.Create();
        using var cert = ca.IssueClient(Alice, new CertificateOptions { IncludeExtendedKeyUsage = false });

        var reason = CertificateTrust.Verify(cert, ca.Certificate, Oids.ClientAuthentication);

        Assert.NotNull(reason);
        Assert.Contains("NotValidForUsage", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_SelfSignedWithSameSubject_Refused()
    {
        using var ca = CertificateAuthority.Create();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=alice, OU=user, O=JobWorker", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(Oids.ClientAuthentication)], false));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(1));

        Assert.NotNull(CertificateTrust.Verify(cert, ca.Certificate, Oids.ClientAuthentication));
    }

    [Fact]
    public void Verify_ForgedIssuerName_Refused()
    {
        // A second CA with the same subject name as ours: the signature, not the name, decides.
        using var ca = CertificateAuthority.Create("JobWorker Development CA");
        using var impostor = CertificateAuthority.Create("JobWorker Development CA");
        using var cert = impostor.IssueClient(Alice);

        Assert.NotNull(CertificateTrust.Verify(cert, ca.Certificate, Oids.ClientAuthentication));
    }

    [Fact]
    public void IssueClient_LongerThanCa_ClampedToCaLifetime()
    {
        using var ca = CertificateAuthority.Create(options: new CertificateOptions { Lifetime = TimeSpan.FromDays(2) });
        using var cert = ca.IssueClient(Alice, new CertificateOptions { Lifetime = TimeSpan.FromDays(30) });

        Assert.True(cert.NotAfter <= ca.Certificate.NotAfter);
        Assert.Null(CertificateTrust.Verify(cert, ca.Certificate, Oids.ClientAuthentication));
    }

    [Fact]
    public void TryRead_TwoOrganizationalUnits_Refused()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=alice, OU=user, OU=admin", key, HashAlgorithmName.SHA256);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));

        Assert.False(ClientIdentity.TryRead(cert, out var identity, out var error));
        Assert.Null(identity);
        Assert.Contains("exactly one CN and one OU", error, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRead_UnknownRole_Refused()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=alice, OU=root", key, HashAlgorithmName.SHA256);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1));

        Assert.False(ClientIdentity.TryRead(cert, out _, out var error));
        Assert.Contains("role 'root'", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_CaIsAnIntermediateThatIssuedTheClient_RefusedAsPartialChain()
    {
        // How step-ca and most production CAs work by default: a root signs an intermediate, which signs the leaves.
        // The trust anchor must be self-signed: configuring the intermediate alone is refused (docs/operations.md
        // shows a single-level setup instead).
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootRequest = new CertificateRequest("CN=Root, O=JobWorker", rootKey, HashAlgorithmName.SHA256);
        rootRequest.CertificateExtensions.Add(X509BasicConstraintsExtension.CreateForCertificateAuthority(1));
        rootRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        rootRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(rootRequest.PublicKey, false));
        using var root = rootRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        using var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var intermediateRequest = new CertificateRequest("CN=Intermediate, O=JobWorker", intermediateKey, HashAlgorithmName.SHA256);
        intermediateRequest.CertificateExtensions.Add(X509BasicConstraintsExtension.CreateForCertificateAuthority(0));
        intermediateRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        intermediateRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(intermediateRequest.PublicKey, false));
        intermediateRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(root, true, false));
        using var signed = intermediateRequest.Create(root, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(20), [7, 7]);
        using var intermediate = CertificateAuthority.FromCertificate(signed.CopyWithPrivateKey(intermediateKey));
        using var cert = intermediate.IssueClient(Alice);

        Assert.StartsWith("PartialChain", CertificateTrust.Verify(cert, intermediate.Certificate, Oids.ClientAuthentication), StringComparison.Ordinal);
    }
}
