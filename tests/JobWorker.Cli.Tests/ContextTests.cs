using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using JobWorker.Pki;

namespace JobWorker.Cli.Tests;

/// <summary>
/// <c>worker context add|use|ls|rm</c> and <c>--context</c>/<c>WORKER_CONTEXT</c> with the real binary against a real
/// server: the config file each test uses lives in its own XDG_CONFIG_HOME.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ContextTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private static readonly string Tp = ServerFixture.TestProcess;

    [Fact(Timeout = 60_000)]
    public async Task ContextAdd_FirstContext_BecomesCurrentAndVerbsNeedNoFlags()
    {
        using var home = new TempDirectory();

        var add = await WorkerAsync(home, ["context", "add", "dev", .. Flags(ServerFixture.Alice)]);
        var list = await WorkerAsync(home, ["list", "--json"]);

        WorkerResult.AssertExit(0, add);
        Assert.Contains("added context 'dev'", add.Stderr, StringComparison.Ordinal);
        Assert.Contains("current context", add.Stderr, StringComparison.Ordinal);
        var file = Path.Combine(home.Path, "jobworker", "client.json");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(file, TestContext.Current.CancellationToken));
        Assert.Equal("dev", json.RootElement.GetProperty("currentContext").GetString());
        var dev = json.RootElement.GetProperty("contexts").GetProperty("dev");
        Assert.Equal(server.Address.ToString().TrimEnd('/'), dev.GetProperty("server").GetString());
        Assert.Equal(server.Pki.ClientCertificate(ServerFixture.Alice), dev.GetProperty("cert").GetString());
        WorkerResult.AssertExit(0, list);
    }

    [Fact(Timeout = 60_000)]
    public async Task ContextUseAndFlag_TwoIdentities_EachCommandActsAsTheSelectedOne()
    {
        using var home = new TempDirectory();
        WorkerResult.AssertExit(0, await WorkerAsync(home, ["context", "add", "alice", .. Flags(ServerFixture.Alice)]));
        WorkerResult.AssertExit(0, await WorkerAsync(home, ["context", "add", "bob", .. Flags(ServerFixture.Bob)]));

        var asAlice = await WorkerAsync(home, ["start", "--json", "--", Tp, "exit", "0"]);
        var asBobByFlag = await WorkerAsync(home, ["--context", "bob", "start", "--json", "--", Tp, "exit", "0"]);
        var asBobByEnvironment = await WorkerAsync(home, ["start", "--json", "--", Tp, "exit", "0"], new() { ["WORKER_CONTEXT"] = "bob" });
        var use = await WorkerAsync(home, ["context", "use", "bob"]);
        var asBobCurrent = await WorkerAsync(home, ["start", "--json", "--", Tp, "exit", "0"]);
        var asAliceByFlag = await WorkerAsync(home, ["--context", "alice", "start", "--json", "--", Tp, "exit", "0"]);
        var ls = await WorkerAsync(home, ["context", "ls"]);
        var lsWithFlag = await WorkerAsync(home, ["context", "ls", "--context", "alice"]);

        Assert.Equal(ServerFixture.Alice, Owner(asAlice));
        Assert.Equal(ServerFixture.Bob, Owner(asBobByFlag));
        Assert.Equal(ServerFixture.Bob, Owner(asBobByEnvironment));
        WorkerResult.AssertExit(0, use);
        Assert.Equal(ServerFixture.Bob, Owner(asBobCurrent));
        Assert.Equal(ServerFixture.Alice, Owner(asAliceByFlag));
        WorkerResult.AssertExit(0, ls);
        var rows = ls.Stdout.TrimEnd('\n').Split('\n');
        Assert.Equal(3, rows.Length);
        Assert.Matches(@"^CURRENT\s+NAME\s+SERVER\s+CERT$", rows[0]);
        Assert.Matches(@"^\s+alice\s+https://", rows[1]);
        Assert.Matches(@"^\*\s+bob\s+https://", rows[2]);
        Assert.Matches(@"^\*\s+alice\s", lsWithFlag.Stdout.Split('\n')[1]);
    }

    [Fact(Timeout = 60_000)]
    public async Task Precedence_PerSetting_FlagThenEnvironmentThenContextThenTopLevelThenDefault()
    {
        using var home = new TempDirectory();
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var silentPort = ((IPEndPoint)silent.LocalEndpoint).Port;
        var config = Path.Combine(home.Path, "client.json");

        // Top level: alice's files and a dead address. Context "real": only the server's address, so the certificate
        // comes from the top level; context "dead": another dead address and a connect timeout of its own.
        var file = new JsonObject
        {
            ["server"] = "https://127.0.0.1:1",
            ["cert"] = server.Pki.ClientCertificate(ServerFixture.Alice),
            ["key"] = server.Pki.ClientKey(ServerFixture.Alice),
            ["ca"] = server.Pki.CaCertificate,
            ["connectTimeout"] = "5s",
            ["currentContext"] = "real",
            ["contexts"] = new JsonObject
            {
                ["real"] = new JsonObject { ["server"] = server.Address.ToString() },
                ["silent"] = new JsonObject { ["server"] = $"https://127.0.0.1:{silentPort}", ["connectTimeout"] = "1s" },
                ["bare"] = new JsonObject(),
            },
        };
        await File.WriteAllTextAsync(config, file.ToJsonString(), TestContext.Current.CancellationToken);
        var env = new Dictionary<string, string> { ["WORKER_CONFIG"] = config };

        var context = await WorkerAsync(home, ["list"], env);
        var envOverContext = await WorkerAsync(home, ["list"], new(env) { ["WORKER_SERVER"] = "https://127.0.0.1:2" });
        var flagOverEnv = await WorkerAsync(home, ["--server", server.Address.ToString(), "list"], new(env) { ["WORKER_SERVER"] = "https://127.0.0.1:2" });
        var contextTimeout = await WorkerAsync(home, ["--context", "silent", "list"], env);
        var envTimeoutOverContext = await WorkerAsync(home, ["--context", "silent", "list"], new(env) { ["WORKER_CONNECT_TIMEOUT"] = "1.5s" });
        var flagContextOverEnv = await WorkerAsync(home, ["--context", "real", "list"], new(env) { ["WORKER_CONTEXT"] = "silent" });
        var topLevel = await WorkerAsync(home, ["--context", "bare", "list"], env);
        var unknownFlag = await WorkerAsync(home, ["--context", "nope", "list"], env);
        var unknownEnvironment = await WorkerAsync(home, ["list"], new(env) { ["WORKER_CONTEXT"] = "nope" });

        WorkerResult.AssertExit(0, context);
        WorkerResult.AssertExit(4, envOverContext);
        Assert.Contains("https://127.0.0.1:2", envOverContext.Stderr, StringComparison.Ordinal);
        WorkerResult.AssertExit(0, flagOverEnv);
        WorkerResult.AssertExit(4, contextTimeout);
        Assert.Contains($"timed out connecting to https://127.0.0.1:{silentPort}: no TLS connection within the client's connect timeout of 1s", contextTimeout.Stderr, StringComparison.Ordinal);
        Assert.Contains("connect timeout of 1.5s", envTimeoutOverContext.Stderr, StringComparison.Ordinal);
        WorkerResult.AssertExit(0, flagContextOverEnv);
        WorkerResult.AssertExit(4, topLevel);
        Assert.Contains("https://127.0.0.1:1", topLevel.Stderr, StringComparison.Ordinal);
        WorkerResult.AssertExit(2, unknownFlag);
        Assert.Contains($"--context: no context 'nope' in config file {config} (the contexts are bare, real, silent)", unknownFlag.Stderr, StringComparison.Ordinal);
        WorkerResult.AssertExit(2, unknownEnvironment);
        Assert.Contains("WORKER_CONTEXT: no context 'nope'", unknownEnvironment.Stderr, StringComparison.Ordinal);

        // Nothing anywhere names a server: the default.
        file.Remove("server");
        file["currentContext"] = "bare";
        file["ca"] = Path.Combine(home.Path, "missing-ca.crt");
        await File.WriteAllTextAsync(config, file.ToJsonString(), TestContext.Current.CancellationToken);
        var defaults = await WorkerAsync(home, ["list"], env);
        WorkerResult.AssertExit(1, defaults);
        Assert.Contains("missing-ca.crt", defaults.Stderr, StringComparison.Ordinal);
        var defaultServer = await WorkerAsync(home, ["--ca", server.Pki.CaCertificate, "--connect-timeout", "1s", "list"], env);
        Assert.Contains("https://127.0.0.1:50051", defaultServer.Stderr, StringComparison.Ordinal);

        // A current context the file does not have is the file's fault: exit 1, naming the key.
        file["currentContext"] = "gone";
        await File.WriteAllTextAsync(config, file.ToJsonString(), TestContext.Current.CancellationToken);
        var staleCurrent = await WorkerAsync(home, ["list"], env);
        WorkerResult.AssertExit(1, staleCurrent);
        Assert.Contains($"\"currentContext\" in config file {config}: no context 'gone'", staleCurrent.Stderr, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task ContextAdd_BadInput_ClearErrorAndNoFileWritten()
    {
        using var home = new TempDirectory();
        using var other = new TempDirectory();
        var foreign = DevPki.Create(other.Path, [new ClientIdentity("eve", Roles.User)]);
        var missing = Path.Combine(home.Path, "nope.crt");
        var cert = server.Pki.ClientCertificate(ServerFixture.Alice);
        var key = server.Pki.ClientKey(ServerFixture.Alice);

        (string[] Args, int Exit, string Message)[] cases =
        [
            (["context", "add", "x", "--cert", missing, "--key", key], 2, $"--cert: {missing} does not exist"),
            (["context", "add", "x", "--cert", cert], 2, "--cert and --key go together"),
            (["context", "add", "x", "--server", "http://127.0.0.1:1"], 2, "only speaks TLS"),
            (["context", "add", "x", "--server", "https://"], 2, "is not a server address"),
            (["context", "add", "x", "--cert", cert, "--key", foreign.ClientKey("eve")], 2, $"--cert {cert} with --key {foreign.ClientKey("eve")}: not a PEM certificate and its private key"),
            (["context", "add", "x", "--ca", key], 2, $"--ca {key}: holds no PEM certificate"),
            (["context", "add", "x", "--ca", other.Path], 2, $"--ca: {other.Path} is a directory"),
            (["context", "add", "x"], 2, "give the context's settings"),
            (["context", "add", "../x", "--server", "127.0.0.1:1"], 2, "'../x' is not a context name"),
            (["context", "use", "x"], 3, "no context 'x' in config file"),
            (["context", "rm", "x"], 3, "no context 'x' in config file"),
        ];
        foreach (var (args, exit, message) in cases)
        {
            var result = await WorkerAsync(home, args);
            WorkerResult.AssertExit(exit, result);
            Assert.Contains(message, result.Stderr.Split('\n')[0], StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
        }

        Assert.False(Directory.Exists(Path.Combine(home.Path, "jobworker")));
    }

    [Fact(Timeout = 60_000)]
    public async Task ContextAddAndRm_ExistingFile_KeepsOtherKeysNeedsForceAndLeavesNoTemporaryFile()
    {
        using var home = new TempDirectory();
        var config = Path.Combine(home.Path, "client.json");
        await File.WriteAllTextAsync(config, """{ "server": "https://127.0.0.1:1", "futureKey": [1, 2] }""", TestContext.Current.CancellationToken);
        var env = new Dictionary<string, string> { ["WORKER_CONFIG"] = config };

        var add = await WorkerAsync(home, ["context", "add", "a", "--server", "127.0.0.1:7"], env);
        var again = await WorkerAsync(home, ["context", "add", "a", "--server", "127.0.0.1:8"], env);
        var forced = await WorkerAsync(home, ["context", "add", "a", "--server", "127.0.0.1:8", "--force"], env);
        var second = await WorkerAsync(home, ["context", "add", "b", "--server", "127.0.0.1:9"], env);
        var removeCurrent = await WorkerAsync(home, ["context", "rm", "a"], env);

        WorkerResult.AssertExit(0, add);
        WorkerResult.AssertExit(1, again);
        Assert.Contains("has a context 'a' already: pass --force", again.Stderr, StringComparison.Ordinal);
        WorkerResult.AssertExit(0, forced);
        WorkerResult.AssertExit(0, second);
        Assert.Contains("use it with 'worker context use b'", second.Stderr, StringComparison.Ordinal);
        WorkerResult.AssertExit(0, removeCurrent);
        Assert.Contains("no context is current now", removeCurrent.Stderr, StringComparison.Ordinal);
        var json = JsonNode.Parse(await File.ReadAllTextAsync(config, TestContext.Current.CancellationToken))!;
        Assert.Equal("[1,2]", json["futureKey"]!.ToJsonString());
        Assert.Equal("https://127.0.0.1:1", json["server"]!.GetValue<string>());
        Assert.Null(json["currentContext"]);
        Assert.Equal(["b"], json["contexts"]!.AsObject().Select(p => p.Key));
        Assert.Equal("https://127.0.0.1:9", json["contexts"]!["b"]!["server"]!.GetValue<string>());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(config));
        Assert.Equal([config], Directory.GetFileSystemEntries(home.Path));
    }

    [Fact(Timeout = 60_000)]
    public async Task ContextAdd_TenAtOnce_EveryContextIsKept()
    {
        // Each add reads the file, changes it and renames a new one over it: without a lock, adds that overlap lose
        // each other's context.
        using var home = new TempDirectory();
        var adds = Enumerable.Range(0, 10).Select(i => WorkerAsync(home, ["context", "add", $"c{i}", "--server", $"127.0.0.1:{7000 + i}"])).ToList();
        var results = await Task.WhenAll(adds);

        Assert.All(results, r => WorkerResult.AssertExit(0, r));
        var file = Path.Combine(home.Path, "jobworker", "client.json");
        var json = JsonNode.Parse(await File.ReadAllTextAsync(file, TestContext.Current.CancellationToken))!;
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"c{i}").Order(), json["contexts"]!.AsObject().Select(p => p.Key).Order());
        Assert.Equal(["client.json"], Directory.GetFileSystemEntries(Path.Combine(home.Path, "jobworker")).Select(Path.GetFileName));
    }

    [Fact(Timeout = 60_000)]
    public async Task ContextAdd_ConfigLockedByAnotherProcess_GivesUpAfterTenSecondsNamingItAndChangesNothing()
    {
        using var home = new TempDirectory();
        WorkerResult.AssertExit(0, await WorkerAsync(home, ["context", "add", "prod", "--server", "prod.example:50051"]));
        var directory = Path.Combine(home.Path, "jobworker");
        var file = Path.Combine(directory, "client.json");
        var before = await File.ReadAllTextAsync(file, TestContext.Current.CancellationToken);

        // Another process holds the lock (flock on the directory, as the CLI takes it) and does not let go: one
        // process, so killing it releases the lock.
        using var holder = Process.Start(new ProcessStartInfo("bash", ["-c", "exec 9<\"$0\" && flock --exclusive 9 && exec sleep 60", directory]))!;
        try
        {
            // Held once a non-blocking attempt fails.
            for (var i = 0; i < 200 && await ExitCodeAsync("flock", "--nonblock", directory, "true") == 0; i++)
            {
                await Task.Delay(50, TestContext.Current.CancellationToken);
            }

            var waited = Stopwatch.StartNew();
            var refused = await WorkerAsync(home, ["context", "add", "staging", "--server", "staging.example:50051"]);
            waited.Stop();

            WorkerResult.AssertExit(1, refused);
            Assert.Equal($"worker context add: another worker command has been changing config file {file} for 10 s; try again\n", refused.Stderr);
            Assert.InRange(waited.Elapsed, TimeSpan.FromSeconds(9.5), TimeSpan.FromSeconds(30));
            Assert.Equal(before, await File.ReadAllTextAsync(file, TestContext.Current.CancellationToken));
        }
        finally
        {
            holder.Kill();
            await holder.WaitForExitAsync(TestContext.Current.CancellationToken);
        }

        // Once the holder is gone the same command goes through.
        WorkerResult.AssertExit(0, await WorkerAsync(home, ["context", "add", "staging", "--server", "staging.example:50051"]));
        Assert.Equal(["client.json"], Directory.GetFileSystemEntries(directory).Select(Path.GetFileName));
    }

    [Fact(Timeout = 60_000)]
    public async Task CertsInit_ExistingContexts_WritesItsOwnAndKeepsTheOthers()
    {
        using var home = new TempDirectory();
        WorkerResult.AssertExit(0, await WorkerAsync(home, ["context", "add", "prod", "--server", "prod.example:50051"]));

        var refused = await WorkerAsync(home, ["certs", "init"]);
        var init = await WorkerAsync(home, ["certs", "init", "--force", "--server", server.Address.ToString()]);
        var contexts = await WorkerAsync(home, ["context", "ls"]);

        WorkerResult.AssertExit(1, refused);
        WorkerResult.AssertExit(0, init);
        Assert.Contains("context 'user'", init.Stdout, StringComparison.Ordinal);
        WorkerResult.AssertExit(0, contexts);
        var names = contexts.Stdout.TrimEnd('\n').Split('\n').Skip(1).Select(r => r.Trim('*', ' ').Split(' ')[0]);
        Assert.Equal(["admin", "prod", "user"], names);
        Assert.Matches(@"\n\*\s+user\s", contexts.Stdout);
    }

    private string[] Flags(string user) =>
        ["--server", server.Address.ToString(), "--cert", server.Pki.ClientCertificate(user), "--key", server.Pki.ClientKey(user), "--ca", server.Pki.CaCertificate];

    private static string Owner(WorkerResult start)
    {
        WorkerResult.AssertExit(0, start);
        using var json = JsonDocument.Parse(start.Stdout);
        return json.RootElement.GetProperty("owner").GetString()!;
    }

    private static async Task<int> ExitCodeAsync(string program, params string[] args)
    {
        using var process = Process.Start(new ProcessStartInfo(program, args))!;
        await process.WaitForExitAsync(TestContext.Current.CancellationToken);
        return process.ExitCode;
    }

    private static Task<WorkerResult> WorkerAsync(TempDirectory home, string[] args, Dictionary<string, string>? environment = null)
    {
        var env = new Dictionary<string, string>(environment ?? []) { ["XDG_CONFIG_HOME"] = home.Path };
        return WorkerProcess.RunAsync(args, env, TestContext.Current.CancellationToken);
    }
}
