using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace JobWorker.Cli.Tests;

/// <summary>
/// Connection set-up of the real <c>worker</c> binary: the connect timeout and where it comes from, retries of a
/// failed TCP/TLS set-up (through <see cref="TcpFaultProxy"/> in front of the real server), and the messages.
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class ConnectionTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Fact(Timeout = 60_000)]
    public async Task List_ServerNeverFinishesTheTlsHandshake_Exit4TimesOutOnTheClientAndNamesTheServer()
    {
        // Listening but never accepting: the kernel completes the TCP handshake, TLS never gets an answer.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var address = $"https://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}";

        var result = await WorkerAsync(["--server", address, "list"], new() { ["WORKER_CONNECT_TIMEOUT"] = "1s" });

        WorkerResult.AssertExit(4, result);
        Assert.Contains($"timed out connecting to {address}: no TLS connection within the client's connect timeout of 1s", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("the server failed", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.Trim().Split('\n'));
        Assert.Empty(result.StdoutBytes);
    }

    [Fact(Timeout = 60_000)]
    public async Task List_FirstHandshakesReset_RetriesAndSucceeds()
    {
        await using var proxy = new TcpFaultProxy(server.Address, resetFirst: 3);

        var result = await WorkerAsync(["--server", proxy.Address.ToString(), "list", "--json"]);

        WorkerResult.AssertExit(0, result);
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.Equal(JsonValueKind.Array, json.RootElement.ValueKind);
        Assert.Equal(4, proxy.Accepted);
    }

    [Fact(Timeout = 60_000)]
    public async Task List_EveryHandshakeReset_Exit4GivesUpWithinTheConnectTimeoutAndSaysWhy()
    {
        await using var proxy = new TcpFaultProxy(server.Address, resetFirst: int.MaxValue);

        var result = await WorkerAsync(["--server", proxy.Address.ToString(), "--connect-timeout", "2s", "list"]);

        WorkerResult.AssertExit(4, result);
        // Reset right after accept: seen as a failed TCP connect or a TLS handshake cut short, depending on timing; on a
        // loaded machine the budget can also run out inside the last attempt, which is then reported as a timeout.
        Assert.Matches(
            $"(cannot connect to https://127.0.0.1:{proxy.Port}: the connection .*; gave up after [0-9]+ attempts|timed out connecting to https://127.0.0.1:{proxy.Port}: no TLS connection) within the client's connect timeout of 2s",
            result.Stderr);
        Assert.Single(result.Stderr.Trim().Split('\n'));
        Assert.True(proxy.Accepted >= 2, $"expected retries, the proxy saw {proxy.Accepted} connection(s)");
    }

    [Fact(Timeout = 60_000)]
    public async Task LogsFollow_ServerGoesAwayAndComesBack_ResumesWithEveryByteOnce()
    {
        // The job writes its first line, then waits for the test to say go: the follower is mid-stream when cut.
        using var dir = new TempDirectory();
        File.SetUnixFileMode(dir.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var go = Path.Combine(dir.Path, "go");
        var start = await server.WorkerAsync(ServerFixture.Alice, "start", "--", "/bin/sh", "-c", $"echo line 1; while [ ! -e {go} ]; do sleep 0.05; done; for i in $(seq 2 40); do echo line $i; done");
        WorkerResult.AssertExit(0, start);
        var id = start.Stdout.Trim();
        await using var proxy = new TcpFaultProxy(server.Address);

        using var follower = WorkerProcess.Start(["--config", server.ConfigFor(ServerFixture.Alice), "--server", proxy.Address.ToString(), "logs", "-f", id]);
        follower.StandardInput.Close();
        var stderr = follower.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        // Once output flows, cut the stream and refuse connections for a while, as a restarting server does.
        var first = await follower.StandardOutput.ReadLineAsync(TestContext.Current.CancellationToken);
        await proxy.GoDownAsync();
        await Task.Delay(1000, TestContext.Current.CancellationToken);
        proxy.ComeBack();
        await File.WriteAllTextAsync(go, string.Empty, TestContext.Current.CancellationToken);
        var rest = await follower.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        await follower.WaitForExitAsync(TestContext.Current.CancellationToken);

        Assert.True(follower.ExitCode == 0, $"exit {follower.ExitCode}; stderr: {await stderr}");
        var final = await server.WorkerAsync(ServerFixture.Alice, "logs", id);
        Assert.Equal(string.Concat(Enumerable.Range(1, 40).Select(i => $"line {i}\n")), final.Stdout);
        Assert.Equal(final.Stdout, first + "\n" + rest);
        Assert.True(proxy.Accepted >= 2, $"expected a reconnection, the proxy saw {proxy.Accepted} connection(s)");
        WorkerResult.AssertExit(0, await server.WorkerAsync(ServerFixture.Alice, "rm", id));
    }

    [Fact(Timeout = 60_000)]
    public async Task ConnectTimeout_FlagOverridesEnvironmentOverridesConfig()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var address = new Uri($"https://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}");
        using var dir = new TempDirectory();
        var config = Path.Combine(dir.Path, "client.json");
        WriteConfig(config, address, "1s");
        var bogus = Path.Combine(dir.Path, "bogus.json");
        WriteConfig(bogus, address, "soon");

        var fromConfig = await WorkerAsync(["--config", config, "list"]);
        var envOverConfig = await WorkerAsync(["--config", bogus, "list"], new() { ["WORKER_CONNECT_TIMEOUT"] = "1.2s" });
        var flagOverEnv = await WorkerAsync(["--config", bogus, "--connect-timeout", "1500ms", "list"], new() { ["WORKER_CONNECT_TIMEOUT"] = "soon" });
        var badConfig = await WorkerAsync(["--config", bogus, "list"]);
        var badEnvironment = await WorkerAsync(["--config", config, "list"], new() { ["WORKER_CONNECT_TIMEOUT"] = "soon" });

        Assert.Contains("connect timeout of 1s", fromConfig.Stderr, StringComparison.Ordinal);
        Assert.Contains("connect timeout of 1.2s", envOverConfig.Stderr, StringComparison.Ordinal);
        Assert.Contains("connect timeout of 1.5s", flagOverEnv.Stderr, StringComparison.Ordinal);
        WorkerResult.AssertExit(1, badConfig);
        Assert.Contains($"\"connectTimeout\" in config file {bogus}: 'soon' is not a duration", badConfig.Stderr, StringComparison.Ordinal);
        WorkerResult.AssertExit(2, badEnvironment);
        Assert.Contains("WORKER_CONNECT_TIMEOUT: 'soon' is not a duration", badEnvironment.Stderr, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Run_SignalWhileTheStartIsInFlight_PrintsTheIdAndStopsTheJob()
    {
        // The server starts the job but its answer is held back: the signal comes while the CLI waits for it.
        await using var proxy = new TcpFaultProxy(server.Address) { HoldServerDataAfterHandshake = true };
        var marker = Guid.NewGuid().ToString("N");
        using var process = WorkerProcess.Start(["--config", server.ConfigFor(ServerFixture.Alice), "--server", proxy.Address.ToString(), "run", "--", ServerFixture.TestProcess, "echo", marker, "sleep", "30"]);
        process.StandardInput.Close();
        var collected = WorkerProcess.CollectAsync(process, TestContext.Current.CancellationToken);
        var id = await WaitForJobAsync(marker);

        Assert.Equal(0, Kill(process.Id, 2));
        await Task.Delay(500, TestContext.Current.CancellationToken);
        proxy.ReleaseServerData();
        var result = await collected;

        try
        {
            WorkerResult.AssertExit(130, result);
            Assert.Contains($"interrupted while the job was starting: stopping job {id}", result.Stderr, StringComparison.Ordinal);
            Assert.NotEqual("running", await StateAsync(id));
        }
        finally
        {
            await server.WorkerAsync(ServerFixture.Alice, "stop", "--grace", "0s", id);
            await server.WorkerAsync(ServerFixture.Alice, "rm", id);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_SignalWhileTheStartIsInFlight_PrintsTheIdOfTheRunningJob()
    {
        await using var proxy = new TcpFaultProxy(server.Address) { HoldServerDataAfterHandshake = true };
        var marker = Guid.NewGuid().ToString("N");
        using var process = WorkerProcess.Start(["--config", server.ConfigFor(ServerFixture.Alice), "--server", proxy.Address.ToString(), "start", "--", ServerFixture.TestProcess, "echo", marker, "sleep", "30"]);
        process.StandardInput.Close();
        var collected = WorkerProcess.CollectAsync(process, TestContext.Current.CancellationToken);
        var id = await WaitForJobAsync(marker);

        Assert.Equal(0, Kill(process.Id, 2));
        await Task.Delay(500, TestContext.Current.CancellationToken);
        proxy.ReleaseServerData();
        var result = await collected;

        try
        {
            WorkerResult.AssertExit(130, result);
            Assert.Equal(id + "\n", result.Stdout);
            Assert.Contains($"job {id} runs (stop it with 'worker stop {id}')", result.Stderr, StringComparison.Ordinal);
            Assert.Equal("running", await StateAsync(id));
        }
        finally
        {
            await server.WorkerAsync(ServerFixture.Alice, "stop", "--grace", "0s", id);
            await server.WorkerAsync(ServerFixture.Alice, "rm", id);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_ConnectionCutBeforeTheAnswer_AsksAgainAndGetsTheSameJob()
    {
        // The job starts, the answer is lost with the connection: the CLI asks again with the same request id.
        await using var proxy = new TcpFaultProxy(server.Address) { HoldServerDataAfterHandshake = true };
        var marker = Guid.NewGuid().ToString("N");
        var start = WorkerAsync(["--server", proxy.Address.ToString(), "start", "--", ServerFixture.TestProcess, "echo", marker, "sleep", "30"]);
        var id = await WaitForJobAsync(marker);

        proxy.HoldServerDataAfterHandshake = false;
        await proxy.GoDownAsync();
        proxy.ComeBack();
        var result = await start;

        try
        {
            WorkerResult.AssertExit(0, result);
            Assert.Equal(id + "\n", result.Stdout);
            Assert.Single(await JobsWithAsync(marker));
            Assert.True(proxy.Accepted >= 2, $"expected a second connection, the proxy saw {proxy.Accepted}");
        }
        finally
        {
            await server.WorkerAsync(ServerFixture.Alice, "stop", "--grace", "0s", id);
            await server.WorkerAsync(ServerFixture.Alice, "rm", id);
        }
    }

    private async Task<string> WaitForJobAsync(string marker)
    {
        while (true)
        {
            if ((await JobsWithAsync(marker)).SingleOrDefault() is { } id)
            {
                return id;
            }

            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
    }

    private async Task<List<string>> JobsWithAsync(string marker)
    {
        var list = await server.WorkerAsync(ServerFixture.Alice, "list", "--json");
        WorkerResult.AssertExit(0, list);
        using var json = JsonDocument.Parse(list.Stdout);
        return [.. json.RootElement.EnumerateArray()
            .Where(j => j.GetProperty("args").EnumerateArray().Any(a => a.GetString() == marker))
            .Select(j => j.GetProperty("id").GetString()!)];
    }

    private async Task<string> StateAsync(string id)
    {
        var status = await server.WorkerAsync(ServerFixture.Alice, "status", "--json", id);
        WorkerResult.AssertExit(0, status);
        using var json = JsonDocument.Parse(status.Stdout);
        return json.RootElement.GetProperty("state").GetString()!;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private void WriteConfig(string path, Uri address, string connectTimeout)
    {
        var json = JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["server"] = address.ToString(),
            ["cert"] = server.Pki.ClientCertificate(ServerFixture.Alice),
            ["key"] = server.Pki.ClientKey(ServerFixture.Alice),
            ["ca"] = server.Pki.CaCertificate,
            ["connectTimeout"] = connectTimeout,
        });
        File.WriteAllText(path, json);
    }

    private Task<WorkerResult> WorkerAsync(string[] args, Dictionary<string, string>? environment = null)
    {
        // The user's certificate and CA unless the arguments bring a config of their own.
        string[] connection = args.Contains("--config") ? [] : ["--config", server.ConfigFor(ServerFixture.Alice)];
        return WorkerProcess.RunAsync([.. connection, .. args], environment, TestContext.Current.CancellationToken);
    }
}
