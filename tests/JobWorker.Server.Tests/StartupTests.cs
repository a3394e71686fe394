using JobWorker.Pki;
using JobWorker.Server.Hosting;

namespace JobWorker.Server.Tests;

/// <summary>ServerApp.Build refuses unusable certificates and keys before anything listens.</summary>
public sealed class StartupTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "jobworker-srvtest-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly DevPkiLayout _pki;

    public StartupTests()
    {
        _pki = DevPki.Create(_directory, []);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Build_KeyReadableByGroup_RefusesWithChmodHint()
    {
        File.SetUnixFileMode(_pki.ServerKey, PemFiles.PrivateKeyMode | UnixFileMode.GroupRead);

        var e = Assert.Throws<StartupException>(() => Build());

        Assert.Contains("chmod 600", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_ServerCertificateFromAnotherCa_Refused()
    {
        using var other = CertificateAuthority.Create();
        PemFiles.WriteCertificate(other.Certificate, _pki.CaCertificate);

        var e = Assert.Throws<StartupException>(() => Build());

        Assert.Contains("does not verify against the CA", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_KeyOfAnotherCertificate_RefusedNamingFiles()
    {
        File.Copy(_pki.CaKey, _pki.ServerKey, overwrite: true);

        var e = Assert.Throws<StartupException>(() => Build());

        Assert.Contains(_pki.ServerKey, e.Message, StringComparison.Ordinal);
        Assert.Contains("--key", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_UsableSettings_BuildsWithoutListening()
    {
        using var app = Build();

        var options = app.Services.GetRequiredService<Configuration.ServerOptions>();
        Assert.Equal(_pki.CaCertificate, options.CaCertificate);
        Assert.Equal(_pki.ServerCertificate, options.ServerCertificate);
        Assert.Equal(_pki.ServerKey, options.ServerKey);
    }

    [Fact]
    public void Build_ShippedSettings_JobsGetPidMountIpcUtsAndCannotDropThem()
    {
        using var app = Build();

        var options = app.Services.GetRequiredService<Configuration.ServerOptions>();
        const Core.Jobs.JobIsolation Expected = Core.Jobs.JobIsolation.Pid | Core.Jobs.JobIsolation.Mount | Core.Jobs.JobIsolation.Ipc | Core.Jobs.JobIsolation.Uts;
        Assert.Equal(Expected, options.DefaultIsolation);
        Assert.Equal(Expected, options.RequiredIsolation);
    }

    [Fact]
    public void Build_IsolationFlag_OverridesTheShippedMinimum()
    {
        using var app = ServerApp.Build(["--required-isolation", "Pid", "--default-isolation", "None"], builder => builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["JobWorker:CaCertificate"] = _pki.CaCertificate,
            ["JobWorker:ServerCertificate"] = _pki.ServerCertificate,
            ["JobWorker:ServerKey"] = _pki.ServerKey,
        }));

        var options = app.Services.GetRequiredService<Configuration.ServerOptions>();
        Assert.Equal(Core.Jobs.JobIsolation.Pid, options.RequiredIsolation);
        Assert.Equal(Core.Jobs.JobIsolation.None, options.DefaultIsolation);
    }

    [Fact]
    public void Build_BadRateLimits_RefusedNamingEachSetting()
    {
        var e = Assert.Throws<StartupException>(() => Build(new Dictionary<string, string?>
        {
            ["RateLimits:User:StartJobBurst"] = "5",
            ["RateLimits:User:StartJobsPerSecond"] = "0",
            ["RateLimits:Admin:MaxOpenStreams"] = "-1",
        }));

        Assert.Equal(
            "invalid configuration:\n  RateLimits:User: set both StartJobBurst and StartJobsPerSecond, or both to 0 for no StartJob rate limit (are 5 and 0)"
            + "\n  RateLimits:Admin:MaxOpenStreams must be 0 (no limit) or positive (is -1)",
            e.Message);
    }

    [Fact]
    public void Build_NoRateLimitSettings_ShippedDefaults()
    {
        using var app = Build();

        var limits = app.Services.GetRequiredService<Configuration.RateLimitOptions>();
        Assert.Equal((20, 10, 100), (limits.User.StartJobBurst, limits.User.StartJobsPerSecond, limits.User.MaxOpenStreams));
        Assert.Equal((100, 50, 1000), (limits.Admin.StartJobBurst, limits.Admin.StartJobsPerSecond, limits.Admin.MaxOpenStreams));
        Assert.Equal((100, 1000), (limits.User.MaxConnections, limits.Admin.MaxConnections));
    }

    [Fact]
    public void Build_RevocationFilesMissingOrUnreadable_RefusedNamingTheFileAndSetting()
    {
        var serials = Path.Combine(_directory, "revoked-serials");
        File.WriteAllText(serials, "0A1B\nnot-a-serial\n");

        var missing = Assert.Throws<StartupException>(() => Build(new Dictionary<string, string?> { ["JobWorker:Tls:RevocationListFile"] = Path.Combine(_directory, "missing.crl") }));
        var bad = Assert.Throws<StartupException>(() => Build(new Dictionary<string, string?> { ["JobWorker:Tls:RevokedSerialsFile"] = serials }));
        var interval = Assert.Throws<StartupException>(() => Build(new Dictionary<string, string?> { ["JobWorker:Tls:ReloadCheckInterval"] = "00:00:00" }));

        Assert.Contains($"Cannot read the revocation file '{Path.Combine(_directory, "missing.crl")}'", missing.Message, StringComparison.Ordinal);
        Assert.Equal($"'{serials}' line 2: 'not-a-serial' is not a serial number in hexadecimal (JobWorker:Tls:RevokedSerialsFile)", bad.Message);
        Assert.Equal("invalid configuration: JobWorker:Tls:ReloadCheckInterval must be between 00:00:00.100 and 01:00:00 (is 00:00:00)", interval.Message);
    }

    private WebApplication Build(Dictionary<string, string?>? extra = null) => ServerApp.Build([], builder => builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["JobWorker:CaCertificate"] = _pki.CaCertificate,
        ["JobWorker:ServerCertificate"] = _pki.ServerCertificate,
        ["JobWorker:ServerKey"] = _pki.ServerKey,
    }.Concat(extra ?? [])));
}
