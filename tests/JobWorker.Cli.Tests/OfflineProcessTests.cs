using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using JobWorker.Pki;

namespace JobWorker.Cli.Tests;

/// <summary>The real <c>worker</c> binary where no server is needed: usage errors, configuration, unreachable server.</summary>
public sealed class OfflineProcessTests
{
    [Theory(Timeout = 30_000)]
    [InlineData("start --memory 12Q x", "--memory: '12Q' is not a size")]
    [InlineData("start --cpu zero x", "--cpu")]
    [InlineData("start --pids -3 x", "--pids")]
    [InlineData("start --io-read-bps /dev/sda x", "DEV=RATE")]
    [InlineData("start --isolate user x", "unknown namespace 'user'")]
    [InlineData("start --nope x", "unknown option '--nope'")]
    [InlineData("start", "Required argument missing")]
    [InlineData("stop --grace forever id", "--grace: 'forever' is not a duration")]
    [InlineData("list --connect-timeout soon", "--connect-timeout: 'soon' is not a duration")]
    [InlineData("list --connect-timeout 0", "--connect-timeout: '0' must be more than 0")]
    [InlineData("list --connect-timeout 2h", "--connect-timeout: '2h' must be at most 1h")]
    [InlineData("logs -f --reconnect-timeout soon id", "--reconnect-timeout: 'soon' is not a duration")]
    [InlineData("logs -f --reconnect-timeout 2d id", "--reconnect-timeout: '2d' must be at most 24h")]
    [InlineData("logs --tail 1 --from-offset 2 id", "--tail and --from-offset cannot be used together")]
    [InlineData("status", "Required argument missing")]
    [InlineData("explode", "Unrecognized command or argument 'explode'")]
    [InlineData("", "Required command was not provided")]
    public async Task Worker_UsageError_Exit2WithMessageOnStderrOnly(string commandLine, string expected)
    {
        var result = await WorkerProcess.RunAsync(commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries));

        WorkerResult.AssertExit(2, result);
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
        Assert.Empty(result.StdoutBytes);
    }

    [Fact(Timeout = 30_000)]
    public async Task Worker_Help_Exit0AndListsVerbs()
    {
        var result = await WorkerProcess.RunAsync("--help");

        WorkerResult.AssertExit(0, result);
        foreach (var verb in new[] { "start", "run", "status", "list", "logs", "stop", "rm", "certs" })
        {
            Assert.Contains(verb, result.Stdout, StringComparison.Ordinal);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Status_NoCertificatesConfigured_Exit1SaysHowToConfigure()
    {
        var result = await WorkerProcess.RunAsync("status", "some-id");

        WorkerResult.AssertExit(1, result);
        Assert.Contains("no client certificate", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("worker certs init", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.Trim().Split('\n'));
    }

    [Fact(Timeout = 30_000)]
    public async Task Status_MissingCaFile_Exit1NamesTheFile()
    {
        using var dir = new TempDirectory();
        var layout = DevPki.Create(dir.Path, [new ClientIdentity("alice", Roles.User)]);
        var missing = Path.Combine(dir.Path, "nope.crt");

        var result = await WorkerProcess.RunAsync(
            ["--cert", layout.ClientCertificate("alice"), "--key", layout.ClientKey("alice"), "--ca", missing, "status", "id"], null, TestContext.Current.CancellationToken);

        WorkerResult.AssertExit(1, result);
        Assert.Contains(missing, result.Stderr, StringComparison.Ordinal);
        Assert.Contains("--ca", result.Stderr, StringComparison.Ordinal);
    }

    [Theory(Timeout = 30_000)]
    [InlineData("list")]
    [InlineData("logs -f 9a25a9ee-4802-40da-8afb-542c9bfc77f1")] // a follower reconnects only to a server it reached
    public async Task Verb_ServerNotListening_Exit4ConnectionRefusedAtOnceWithoutStackTrace(string commandLine)
    {
        using var dir = new TempDirectory();
        var layout = DevPki.Create(dir.Path, [new ClientIdentity("alice", Roles.User)]);
        var port = FreeLoopbackPort();

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = await WorkerProcess.RunAsync(
            commandLine.Split(' '),
            new Dictionary<string, string>
            {
                ["WORKER_SERVER"] = $"https://127.0.0.1:{port}",
                ["WORKER_CERT"] = layout.ClientCertificate("alice"),
                ["WORKER_KEY"] = layout.ClientKey("alice"),
                ["WORKER_CA"] = layout.CaCertificate,
            },
            TestContext.Current.CancellationToken);

        WorkerResult.AssertExit(4, result);
        Assert.Contains($"cannot connect to https://127.0.0.1:{port}: connection refused", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.Trim().Split('\n'));
        Assert.Empty(result.StdoutBytes);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed.TotalSeconds:F1} s");
    }

    [Fact(Timeout = 30_000)]
    public async Task Server_HttpScheme_Exit2SaysTlsOnly()
    {
        var result = await WorkerProcess.RunAsync("--server", "http://127.0.0.1:1", "list");

        WorkerResult.AssertExit(2, result);
        Assert.Contains("only speaks TLS", result.Stderr, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task Config_InvalidJson_Exit1NamesTheFile()
    {
        using var dir = new TempDirectory();
        var config = Path.Combine(dir.Path, "client.json");
        await File.WriteAllTextAsync(config, "{ not json", TestContext.Current.CancellationToken);

        var result = await WorkerProcess.RunAsync("--config", config, "list");

        WorkerResult.AssertExit(1, result);
        Assert.Contains(config, result.Stderr, StringComparison.Ordinal);
        Assert.Contains("not valid JSON", result.Stderr, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task CertsInit_EmptyDirectory_WritesPkiAndUserAndAdminConfigsAndContexts()
    {
        using var dir = new TempDirectory();

        var result = await WorkerProcess.RunAsync("certs", "init", "--config-dir", dir.Path, "--user", "bob", "--admin", "root-admin", "--server", "https://localhost:7000");

        WorkerResult.AssertExit(0, result);
        var layout = new DevPkiLayout(Path.Combine(dir.Path, "pki"));
        foreach (var (file, user, role) in new[] { ("client.json", "bob", Roles.User), ("admin.json", "root-admin", Roles.Admin) })
        {
            var path = Path.Combine(dir.Path, file);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            using var json = JsonDocument.Parse(await File.ReadAllTextAsync(path, TestContext.Current.CancellationToken));
            Assert.Equal("https://localhost:7000", json.RootElement.GetProperty("server").GetString());
            Assert.Equal(layout.ClientCertificate(user), json.RootElement.GetProperty("cert").GetString());
            Assert.Equal(layout.ClientKey(user), json.RootElement.GetProperty("key").GetString());
            Assert.Equal(layout.CaCertificate, json.RootElement.GetProperty("ca").GetString());
            using var clientJson = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(dir.Path, "client.json"), TestContext.Current.CancellationToken));
            Assert.Equal("bob", clientJson.RootElement.GetProperty("currentContext").GetString());
            var context = clientJson.RootElement.GetProperty("contexts").GetProperty(user);
            Assert.Equal("https://localhost:7000", context.GetProperty("server").GetString());
            Assert.Equal(layout.ClientCertificate(user), context.GetProperty("cert").GetString());
            Assert.Equal(layout.ClientKey(user), context.GetProperty("key").GetString());
            Assert.Equal(layout.CaCertificate, context.GetProperty("ca").GetString());
            using var certificate = PemFiles.LoadCertificate(layout.ClientCertificate(user));
            Assert.True(ClientIdentity.TryRead(certificate, out var identity, out var error), error);
            Assert.Equal(new ClientIdentity(user, role), identity);
        }

        using var ca = PemFiles.LoadCertificate(layout.CaCertificate);
        using var server = PemFiles.LoadCertificate(layout.ServerCertificate);
        Assert.Null(CertificateTrust.Verify(server, ca, Oids.ServerAuthentication));
    }

    [Fact(Timeout = 30_000)]
    public async Task CertsInit_ConfigExists_Exit1UnlessForce()
    {
        using var dir = new TempDirectory();
        WorkerResult.AssertExit(0, await WorkerProcess.RunAsync("certs", "init", "--config-dir", dir.Path));
        var before = await File.ReadAllBytesAsync(Path.Combine(dir.Path, "pki", "ca.crt"), TestContext.Current.CancellationToken);

        var again = await WorkerProcess.RunAsync("certs", "init", "--config-dir", dir.Path);
        var forced = await WorkerProcess.RunAsync("certs", "init", "--config-dir", dir.Path, "--force");

        WorkerResult.AssertExit(1, again);
        Assert.Contains("--force", again.Stderr, StringComparison.Ordinal);
        WorkerResult.AssertExit(0, forced);
        Assert.NotEqual(before, await File.ReadAllBytesAsync(Path.Combine(dir.Path, "pki", "ca.crt"), TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 30_000)]
    public async Task CertsInit_InvalidUserName_Exit2()
    {
        using var dir = new TempDirectory();

        var result = await WorkerProcess.RunAsync("certs", "init", "--config-dir", dir.Path, "--user", "../evil");

        WorkerResult.AssertExit(2, result);
        Assert.Contains("user name", result.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dir.Path, "client.json")));
    }

    internal static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
