using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace JobWorker.Pki.Tests;

public sealed class DevPkiTests
{
    [Fact]
    public void Create_TwoClients_WritesEveryFileWithSafeModes()
    {
        using var dir = new TempDirectory();
        var pkiDir = Path.Combine(dir.Path, "pki");

        var layout = DevPki.Create(pkiDir, [new("alice", Roles.Admin), new("bob", Roles.User)]);

        Assert.Equal(PemFiles.DirectoryMode, File.GetUnixFileMode(layout.Directory));
        Assert.Equal(PemFiles.DirectoryMode, File.GetUnixFileMode(layout.ClientsDirectory));
        foreach (var key in new[] { layout.CaKey, layout.ServerKey, layout.ClientKey("alice"), layout.ClientKey("bob") })
        {
            Assert.Equal(PemFiles.PrivateKeyMode, File.GetUnixFileMode(key));
            Assert.Null(PemFiles.CheckPrivateKeyPermissions(key));
        }

        foreach (var cert in new[] { layout.CaCertificate, layout.ServerCertificate, layout.ClientCertificate("alice"), layout.ClientCertificate("bob") })
        {
            Assert.StartsWith("-----BEGIN CERTIFICATE-----", File.ReadAllText(cert), StringComparison.Ordinal);
        }

        // Nothing else (no leftover temporary files).
        Assert.Equal(4, Directory.GetFiles(layout.Directory).Length);
        Assert.Equal(4, Directory.GetFiles(layout.ClientsDirectory).Length);
    }

    [Fact]
    public void Create_ServerCertificate_HasServerAuthAndLocalNames()
    {
        using var dir = new TempDirectory();
        var layout = DevPki.Create(dir.Path, [], new DevPkiOptions { ServerNames = ["jobs.example", "10.1.2.3"] });

        using var server = PemFiles.LoadCertificateWithKey(layout.ServerCertificate, layout.ServerKey);
        using var ca = PemFiles.LoadCertificate(layout.CaCertificate);

        Assert.True(server.HasPrivateKey);
        Assert.Null(CertificateTrust.Verify(server, ca, Oids.ServerAuthentication));
        Assert.NotNull(CertificateTrust.Verify(server, ca, Oids.ClientAuthentication));
        var san = server.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        var dns = san.EnumerateDnsNames().ToList();
        var ips = san.EnumerateIPAddresses().ToList();
        Assert.Contains("localhost", dns);
        Assert.Contains(Dns.GetHostName(), dns);
        Assert.Contains("jobs.example", dns);
        Assert.Contains(IPAddress.Loopback, ips);
        Assert.Contains(IPAddress.IPv6Loopback, ips);
        Assert.Contains(IPAddress.Parse("10.1.2.3"), ips);
        Assert.True(server.MatchesHostname("localhost"));
        using var publicKey = server.GetECDsaPublicKey();
        Assert.NotNull(publicKey);
        Assert.Equal(256, publicKey.KeySize);
    }

    [Fact]
    public void Create_ClientCertificate_CarriesUserRoleAndClientAuth()
    {
        using var dir = new TempDirectory();
        var layout = DevPki.Create(dir.Path, [new("alice", Roles.Admin), new("bob", Roles.User)]);
        using var ca = PemFiles.LoadCertificate(layout.CaCertificate);

        using var alice = PemFiles.LoadCertificateWithKey(layout.ClientCertificate("alice"), layout.ClientKey("alice"));
        using var bob = PemFiles.LoadCertificateWithKey(layout.ClientCertificate("bob"), layout.ClientKey("bob"));

        Assert.Null(CertificateTrust.Verify(alice, ca, Oids.ClientAuthentication));
        Assert.NotNull(CertificateTrust.Verify(alice, ca, Oids.ServerAuthentication));
        Assert.True(ClientIdentity.TryRead(alice, out var aliceId, out _));
        Assert.Equal(new ClientIdentity("alice", Roles.Admin), aliceId);
        Assert.True(ClientIdentity.TryRead(bob, out var bobId, out _));
        Assert.Equal(new ClientIdentity("bob", Roles.User), bobId);
        using var key = alice.GetECDsaPrivateKey();
        Assert.NotNull(key);
        Assert.Equal(256, key.KeySize);
    }

    [Fact]
    public void Create_ExistingPki_RefusesUnlessOverwrite()
    {
        using var dir = new TempDirectory();
        var layout = DevPki.Create(dir.Path, []);
        var firstCa = File.ReadAllText(layout.CaCertificate);

        var e = Assert.Throws<PkiException>(() => DevPki.Create(dir.Path, []));
        Assert.Contains("already exists", e.Message, StringComparison.Ordinal);
        Assert.Equal(firstCa, File.ReadAllText(layout.CaCertificate));

        DevPki.Create(dir.Path, [], new DevPkiOptions { Overwrite = true });
        Assert.NotEqual(firstCa, File.ReadAllText(layout.CaCertificate));
    }

    [Fact]
    public void Create_ExistingWideDirectory_NarrowedTo0700()
    {
        using var dir = new TempDirectory();
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0b111_101_101);

        DevPki.Create(dir.Path, []);

        Assert.Equal(PemFiles.DirectoryMode, File.GetUnixFileMode(dir.Path));
    }

    [Theory]
    [InlineData("", Roles.User, "empty")]
    [InlineData("../etc", Roles.User, "contains '/'")]
    [InlineData("al ice", Roles.User, "contains ' '")]
    [InlineData(".hidden", Roles.User, "must not start")]
    [InlineData("alice", "root", "role 'root' is unknown")]
    [InlineData("alice", "Admin", "role 'Admin' is unknown")]
    public void Create_InvalidIdentity_ThrowsNamingTheProblem(string user, string role, string expected)
    {
        using var dir = new TempDirectory();
        var e = Assert.Throws<ArgumentException>(() => DevPki.Create(Path.Combine(dir.Path, "p"), [new(user, role)]));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "p")));
    }

    [Fact]
    public void Create_DuplicateUser_Throws()
    {
        using var dir = new TempDirectory();
        var e = Assert.Throws<ArgumentException>(() => DevPki.Create(dir.Path, [new("a", Roles.User), new("a", Roles.Admin)]));
        Assert.Contains("more than once", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddClient_ExistingPki_IssuesWithTheSameCa()
    {
        using var dir = new TempDirectory();
        var layout = DevPki.Create(dir.Path, []);

        DevPki.AddClient(dir.Path, new ClientIdentity("carol", Roles.User));

        using var ca = PemFiles.LoadCertificate(layout.CaCertificate);
        using var carol = PemFiles.LoadCertificateWithKey(layout.ClientCertificate("carol"), layout.ClientKey("carol"));
        Assert.Null(CertificateTrust.Verify(carol, ca, Oids.ClientAuthentication));
        Assert.Equal(PemFiles.PrivateKeyMode, File.GetUnixFileMode(layout.ClientKey("carol")));
    }

    [Fact]
    public void AddClient_NoCa_ThrowsPkiException()
    {
        using var dir = new TempDirectory();
        var e = Assert.Throws<PkiException>(() => DevPki.AddClient(dir.Path, new ClientIdentity("carol", Roles.User)));
        Assert.Contains("No CA", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadCertificateWithKey_KeyOfAnotherCertificate_ThrowsNamingFiles()
    {
        using var dir = new TempDirectory();
        var layout = DevPki.Create(dir.Path, [new("alice", Roles.User)]);

        var e = Assert.Throws<PkiException>(() => PemFiles.LoadCertificateWithKey(layout.ClientCertificate("alice"), layout.ServerKey));
        Assert.Contains(layout.ServerKey, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadCertificate_MissingFile_ThrowsNamingFile()
    {
        var e = Assert.Throws<PkiException>(() => PemFiles.LoadCertificate("/nonexistent/ca.crt"));
        Assert.Contains("/nonexistent/ca.crt", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckPrivateKeyPermissions_GroupReadable_ReturnsFix()
    {
        using var dir = new TempDirectory();
        var layout = DevPki.Create(dir.Path, []);
        File.SetUnixFileMode(layout.ServerKey, PemFiles.PrivateKeyMode | UnixFileMode.GroupRead);

        var message = PemFiles.CheckPrivateKeyPermissions(layout.ServerKey);

        Assert.NotNull(message);
        Assert.Contains("0640", message, StringComparison.Ordinal);
        Assert.Contains("chmod 600", message, StringComparison.Ordinal);
    }
}
