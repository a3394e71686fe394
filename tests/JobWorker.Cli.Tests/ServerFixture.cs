using System.Text.Json;
using JobWorker.Pki;
using JobWorker.Server;
using JobWorker.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace JobWorker.Cli.Tests;

/// <summary>
/// A real JobWorker server for the CLI tests: Kestrel with mutual TLS on a random loopback port, hosted in the
/// test process, certificates from <see cref="DevPki"/> in a private temporary directory, its own cgroup subtree
/// (<c>&lt;cgroup2&gt;/jobworker-clitest-&lt;random&gt;</c>) and log directory. A client config per user is written
/// next to the PKI, as <c>worker certs init</c> would. Everything is removed on dispose; a cgroup left behind fails.
/// </summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public const string Alice = "alice";
    public const string Bob = "bob";
    public const string Admin = "admin";

    private readonly TempDirectory _directory = new();
    private WebApplication? _app;

    public string Directory => _directory.Path;

    /// <summary>Settings over the fixture's defaults (for a server a test starts itself).</summary>
    public Dictionary<string, string?> Settings { get; init; } = [];

    public DevPkiLayout Pki { get; private set; } = null!;

    public Uri Address { get; private set; } = null!;

    public string CgroupRoot { get; private set; } = null!;

    /// <summary>Where the server creates each user's private directory (outside /tmp, which isolated jobs do not see).</summary>
    public string UserDirectoryRoot { get; } = Path.Combine("/var/tmp", "jobworker-clitest-users-" + Guid.NewGuid().ToString("N")[..12]);

    /// <summary>The tests' dummy job (tests/JobWorker.TestProcess), built next to the tests.</summary>
    public static string TestProcess { get; } = Path.Combine(AppContext.BaseDirectory, "jobworker-testprocess");

    public static string CgroupMount { get; } = File.ReadLines("/proc/self/mountinfo")
        .Select(line => (Fields: line.Split(' '), Type: line[(line.IndexOf(" - ", StringComparison.Ordinal) + 3)..].Split(' ')[0]))
        .Where(m => m.Type == "cgroup2")
        .Select(m => m.Fields[4])
        .FirstOrDefault() ?? throw new InvalidOperationException("no cgroup2 mount in /proc/self/mountinfo");

    /// <summary>The client config file of a user of this server's PKI.</summary>
    public string ConfigFor(string user) => Path.Combine(Directory, user + ".json");

    public async ValueTask InitializeAsync()
    {
        Pki = DevPki.Create(Path.Combine(Directory, "pki"), [new(Alice, Roles.User), new(Bob, Roles.User), new(Admin, Roles.Admin)]);
        CgroupRoot = Path.Combine(CgroupMount, "jobworker-clitest-" + Guid.NewGuid().ToString("N")[..12]);
        var config = new Dictionary<string, string?>
        {
            ["JobWorker:Listen"] = "127.0.0.1:0",
            ["JobWorker:CaCertificate"] = Pki.CaCertificate,
            ["JobWorker:ServerCertificate"] = Pki.ServerCertificate,
            ["JobWorker:ServerKey"] = Pki.ServerKey,
            ["JobWorker:CgroupRoot"] = CgroupRoot,
            ["JobWorker:StateDirectory"] = Path.Combine(Directory, "logs"),
            ["JobWorker:DefaultStopGrace"] = "00:00:02",
            ["JobWorker:StopJobsOnShutdown"] = "true",
            ["JobWorker:Identity:UserDirectoryRoot"] = UserDirectoryRoot,
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (key, value) in TestServerSettings.Defaults)
        {
            config[key] = value;
        }

        foreach (var (key, value) in Settings)
        {
            config[key] = value;
        }

        _app = ServerApp.Build([], builder =>
        {
            builder.Configuration.AddInMemoryCollection(config);
            builder.Logging.ClearProviders();
        });
        await _app.StartAsync(TestContext.Current.CancellationToken);
        Address = ServerApp.GetGrpcAddress(_app);

        foreach (var user in new[] { Alice, Bob, Admin })
        {
            WriteConfig(ConfigFor(user), Address, Pki.ClientCertificate(user), Pki.ClientKey(user), Pki.CaCertificate);
        }
    }

    public static void WriteConfig(string path, Uri server, string cert, string key, string ca)
    {
        var json = JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["server"] = server.ToString(),
            ["cert"] = cert,
            ["key"] = key,
            ["ca"] = ca,
        });
        File.WriteAllText(path, json);
    }

    /// <summary>Runs the real <c>worker</c> binary as <paramref name="user"/> against this server.</summary>
    public Task<WorkerResult> WorkerAsync(string user, params string[] args)
        => WorkerProcess.RunAsync(["--config", ConfigFor(user), .. args], null, TestContext.Current.CancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_app is not null)
            {
                await _app.StopAsync(CancellationToken.None);
                await _app.DisposeAsync();
            }
        }
        finally
        {
            _directory.Dispose();
            if (System.IO.Directory.Exists(UserDirectoryRoot))
            {
                System.IO.Directory.Delete(UserDirectoryRoot, recursive: true);
            }
        }

        // The runner removes its subtree; a leftover is a leak to report.
        if (CgroupRoot is not null && System.IO.Directory.Exists(CgroupRoot))
        {
            var left = string.Join(", ", System.IO.Directory.GetDirectories(CgroupRoot));
            KillAndRemove(CgroupRoot);
            throw new InvalidOperationException($"the server left its cgroup subtree {CgroupRoot} behind ({left})");
        }
    }

    /// <summary>Removes a cgroup subtree a test created, killing what is left in it first.</summary>
    internal static void KillAndRemove(string group)
    {
        foreach (var child in System.IO.Directory.GetDirectories(group))
        {
            KillAndRemove(child);
        }

        try
        {
            File.WriteAllText(Path.Combine(group, "cgroup.kill"), "1");
        }
        catch (IOException)
        {
        }

        for (var attempt = 0; attempt < 200 && System.IO.Directory.Exists(group); attempt++)
        {
            try
            {
                System.IO.Directory.Delete(group);
            }
            catch (IOException)
            {
                Thread.Sleep(10);
            }
        }
    }
}
