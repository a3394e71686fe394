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

    private WebApplication Build() => ServerApp.Build([], builder => builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["JobWorker:CaCertificate"] = _pki.CaCertificate,
        ["JobWorker:ServerCertificate"] = _pki.ServerCertificate,
        ["JobWorker:ServerKey"] = _pki.ServerKey,
    }));
}
