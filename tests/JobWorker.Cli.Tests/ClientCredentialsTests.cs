using JobWorker.Cli.Connection;
using JobWorker.Cli.Infrastructure;
using JobWorker.Pki;

namespace JobWorker.Cli.Tests;

/// <summary>
/// The CLI's reload of its certificate and key, in-process with real files: a renewal written file by file is taken
/// only once the pair matches, and until then the pair that loaded stays in use.
/// </summary>
public sealed class ClientCredentialsTests
{
    [Fact]
    public void Refresh_KeyRenewedBeforeItsCertificate_KeepsTheOldPairUntilTheNewOneMatches()
    {
        using var dir = new TempDirectory();
        using var ca = CertificateAuthority.Create();
        var alice = new ClientIdentity("alice", Roles.User);
        using var first = ca.IssueClient(alice);
        using var renewed = ca.IssueClient(alice);
        var (cert, key) = (Path.Combine(dir.Path, "alice.crt"), Path.Combine(dir.Path, "alice.key"));
        PemFiles.WriteCertificate(first, cert);
        PemFiles.WritePrivateKey(first, key);

        var credentials = ClientCredentials.Load(cert, key);
        Assert.False(credentials.Refresh());
        Assert.Equal(first.Thumbprint, credentials.Current.TargetCertificate.Thumbprint);

        // The new key next to the old certificate: no usable pair yet.
        PemFiles.WritePrivateKey(renewed, key);
        Assert.False(credentials.Refresh());
        Assert.Equal(first.Thumbprint, credentials.Current.TargetCertificate.Thumbprint);

        PemFiles.WriteCertificate(renewed, cert);
        Assert.True(credentials.Refresh());
        Assert.Equal(renewed.Thumbprint, credentials.Current.TargetCertificate.Thumbprint);
        Assert.False(credentials.Refresh());
    }

    [Fact]
    public void Load_MissingKey_NamesBothFilesAndTheFix()
    {
        using var dir = new TempDirectory();
        var cert = Path.Combine(dir.Path, "alice.crt");
        var key = Path.Combine(dir.Path, "missing.key");
        using var ca = CertificateAuthority.Create();
        using var issued = ca.IssueClient(new ClientIdentity("alice", Roles.User));
        PemFiles.WriteCertificate(issued, cert);

        var error = Assert.Throws<CliException>(() => ClientCredentials.Load(cert, key));

        Assert.StartsWith($"cannot load the client certificate {cert} with key {key}: ", error.Message, StringComparison.Ordinal);
        Assert.EndsWith("Check --cert/--key (WORKER_CERT/WORKER_KEY)", error.Message, StringComparison.Ordinal);
    }
}
