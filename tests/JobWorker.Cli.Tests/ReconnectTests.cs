using System.Security.Cryptography;
using JobWorker.Pki;

namespace JobWorker.Cli.Tests;

/// <summary>
/// <c>worker logs -f</c> and <c>worker run</c> across a restart of the real server binary on the same port and state
/// directory: the server is killed (SIGKILL) or shut down (SIGTERM, which leaves jobs running) while the real CLI
/// follows a job that writes numbered lines without pause, and started again 2 s later. The CLI's stdout must be
/// exactly the job's log (no gap, no duplicate), its notices must go to stderr, and it must end as it would have
/// without the restart. A server that does not come back ends the CLI within the reconnect timeout.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ReconnectTests
{
    private static readonly TimeSpan Down = TimeSpan.FromSeconds(2);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Theory(Timeout = 30_000)]
    [InlineData(9)]
    [InlineData(15)]
    public async Task LogsFollow_ServerRestartedMidStream_WritesEveryByteOnceAndExits0(int signal)
    {
        await using var server = new RestartableServer();
        await server.StartAsync(Token);
        var stop = Path.Combine(server.Directory, "stop");
        var id = await StartAsync(server, Writer(stop, "echo end"));
        using var follower = new LiveWorker(["--config", server.Config, "logs", "-f", id]);

        await RestartUnderAsync(server, follower, signal);
        await StopWriterAndAssertFollowedEveryByteOnceAsync(server, follower, stop, id);
    }

    [Fact(Timeout = 30_000)]
    public async Task LogsFollow_JobSilentUntilAfterTheRestart_ReconnectsAndWritesItsOutput()
    {
        // Nothing flows before the crash: the follower knows its stream was taken from the server's response headers.
        await using var server = new RestartableServer();
        server.Environment["Logging__LogLevel__JobWorker.Server.Services.JobWorkerService"] = "Debug";
        await server.StartAsync(Token);
        var stop = Path.Combine(server.Directory, "stop");
        var id = await StartAsync(server, $"while [ ! -e {stop} ]; do sleep 0.05; done; echo end");
        using var follower = new LiveWorker(["--config", server.Config, "logs", "-f", id]);
        await server.WaitForOutputAsync($"opened an output stream of job {id}", Token);
        await Task.Delay(200, Token);

        await server.StopAsync(9, Token);
        await follower.WaitForStderrAsync("lost the connection", Token);
        await Task.Delay(Down, Token);
        await server.StartAsync(Token);
        await follower.WaitForStderrAsync("reconnected to", Token);
        await File.WriteAllTextAsync(stop, string.Empty, Token);
        var result = await follower.WaitForExitAsync(Token);

        WorkerResult.AssertExit(0, result);
        Assert.Equal("end\n", result.Stdout);
        AssertOnlyNotices(result.Stderr, "logs", server, id);
    }

    [Fact(Timeout = 30_000)]
    public async Task Run_ServerKilledMidStream_ExitsWithTheJobsExitCode()
    {
        await using var server = new RestartableServer();
        await server.StartAsync(Token);
        var stop = Path.Combine(server.Directory, "stop");

        // A connect timeout shorter than the outage: the reconnect timeout alone bounds the wait for the server.
        using var runner = new LiveWorker(["--config", server.Config, "--connect-timeout", "1s", "run", "--", "/bin/sh", "-c", Writer(stop, "echo end; exit 7")]);
        await RestartUnderAsync(server, runner, signal: 9);
        await File.WriteAllTextAsync(stop, string.Empty, Token);
        var result = await runner.WaitForExitAsync(Token);

        WorkerResult.AssertExit(7, result);
        var id = SingleJob(server);
        AssertSameBytes(server.LogFile(id), result.StdoutBytes);
        AssertNumberedLines(result.Stdout, first: 1, last: "end");
        AssertOnlyNotices(result.Stderr, "run", server, id);
    }

    [Fact(Timeout = 30_000)]
    public async Task Run_JobSignaledWhileNoServerRuns_Exits128PlusTheSignal()
    {
        await using var server = new RestartableServer();
        await server.StartAsync(Token);
        var stop = Path.Combine(server.Directory, "stop");
        using var runner = new LiveWorker(["--config", server.Config, "run", "--", "/bin/sh", "-c", Writer(stop, "echo end; kill -USR1 $$")]);
        await runner.WaitForStdoutAsync(0, Token);
        var id = SingleJob(server);

        // The job ends (SIGUSR1) while no server runs; the new server has its exit status and the rest of its output.
        await server.StopAsync(15, Token);
        await runner.WaitForStderrAsync("lost the connection", Token);
        await File.WriteAllTextAsync(stop, string.Empty, Token);
        while (!server.LogFile(id).AsSpan().EndsWith("end\n"u8))
        {
            await Task.Delay(20, Token);
        }

        await Task.Delay(Down, Token);
        await server.StartAsync(Token);
        var result = await runner.WaitForExitAsync(Token);

        WorkerResult.AssertExit(128 + 10, result);
        AssertSameBytes(server.LogFile(id), result.StdoutBytes);
        AssertNumberedLines(result.Stdout, first: 1, last: "end");
        AssertOnlyNotices(result.Stderr, "run", server, id);
    }

    [Fact(Timeout = 30_000)]
    public async Task LogsFollowTail_ServerRestartedMidStream_ResumesByOffsetNotByTail()
    {
        await using var server = new RestartableServer();
        await server.StartAsync(Token);
        var stop = Path.Combine(server.Directory, "stop");
        var id = await StartAsync(server, Writer(stop, "echo end"));
        while (!File.Exists(server.LogPath(id)) || server.LogFile(id).Count(b => b == '\n') < 20)
        {
            await Task.Delay(20, Token);
        }

        using var follower = new LiveWorker(["--config", server.Config, "logs", "-f", "--tail", "3", id]);
        await RestartUnderAsync(server, follower, signal: 9);
        await File.WriteAllTextAsync(stop, string.Empty, Token);
        var result = await follower.WaitForExitAsync(Token);

        WorkerResult.AssertExit(0, result);
        var log = server.LogFile(id);
        var stdout = result.StdoutBytes;

        // The tail's last 3 lines, then every byte after them once: a suffix of the log that starts at a line.
        Assert.True(log.AsSpan().EndsWith(stdout), $"stdout ({stdout.Length} bytes) is not a suffix of the log ({log.Length} bytes)");
        Assert.Equal((byte)'\n', log[log.Length - stdout.Length - 1]);
        var firstLine = int.Parse(result.Stdout.Split('\n')[0]["line ".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(firstLine >= 18, $"the tail started at line {firstLine}");
        AssertNumberedLines(result.Stdout, firstLine, last: "end");
        AssertOnlyNotices(result.Stderr, "logs", server, id);
    }

    [Fact(Timeout = 30_000)]
    public async Task LogsFollow_ServerNotBackWithinTheReconnectTimeout_Exits75NamingServerJobAndOffset()
    {
        await using var server = new RestartableServer();
        await server.StartAsync(Token);
        var stop = Path.Combine(server.Directory, "stop");
        var id = await StartAsync(server, Writer(stop, "echo end"));
        using var follower = new LiveWorker(["--config", server.Config, "logs", "-f", id], new Dictionary<string, string> { ["WORKER_RECONNECT_TIMEOUT"] = "2s" });
        await follower.WaitForStdoutAsync(0, Token);

        await server.StopAsync(9, Token);
        var lost = System.Diagnostics.Stopwatch.StartNew();
        var result = await follower.WaitForExitAsync(Token);
        var waited = lost.Elapsed;

        WorkerResult.AssertExit(75, result);
        Assert.True(waited < TimeSpan.FromSeconds(10), $"gave up after {waited.TotalSeconds:F1} s with a reconnect timeout of 2 s");
        var address = server.Address.ToString().TrimEnd('/');
        Assert.Contains($"worker logs: lost the connection to {address}; reconnecting for up to 2s\n", result.Stderr, StringComparison.Ordinal);
        var offset = result.StdoutBytes.Length;
        Assert.EndsWith(
            $"worker logs: lost the connection to the server at {address} while following job {id}, and it was not back within the reconnect timeout of 2s "
                + $"(--reconnect-timeout or WORKER_RECONNECT_TIMEOUT). The job may still be running: resume with 'worker logs -f --from-offset {offset} {id}'\n",
            result.Stderr,
            StringComparison.Ordinal);

        // The command it names picks up exactly where the output stopped.
        await server.StartAsync(Token);
        await File.WriteAllTextAsync(stop, string.Empty, Token);
        var rest = await server.WorkerAsync("logs", "-f", "--from-offset", offset.ToString(System.Globalization.CultureInfo.InvariantCulture), id);
        WorkerResult.AssertExit(0, rest);
        AssertSameBytes(server.LogFile(id), [.. result.StdoutBytes, .. rest.StdoutBytes]);
        AssertNumberedLines(result.Stdout + rest.Stdout, first: 1, last: "end");
    }

    [Fact(Timeout = 45_000)]
    public async Task LogsFollow_CertificateExpiresAfterItsRenewalOnDisk_ReconnectsWithTheRenewedOneAndWritesEveryByteOnce()
    {
        await using var server = new RestartableServer();
        server.Environment["JobWorker__Tls__ReloadCheckInterval"] = "00:00:01";
        await server.StartAsync(Token);

        // alice's follower presents a certificate of its own files, valid for a few seconds more.
        using var ca = CertificateAuthority.Load(server.Pki.CaCertificate, server.Pki.CaKey);
        var alice = new ClientIdentity(ServerFixture.Alice, Roles.User);
        using var shortLived = ca.IssueClient(alice, new CertificateOptions { NotAfter = DateTimeOffset.UtcNow.AddSeconds(6) });
        var files = Directory.CreateDirectory(Path.Combine(server.Directory, "renewed")).FullName;
        var (cert, key, config) = (Path.Combine(files, "alice.crt"), Path.Combine(files, "alice.key"), Path.Combine(files, "alice.json"));
        PemFiles.WriteCertificate(shortLived, cert);
        PemFiles.WritePrivateKey(shortLived, key);
        ServerFixture.WriteConfig(config, server.Address, cert, key, server.Pki.CaCertificate);
        var stop = Path.Combine(server.Directory, "stop");
        var id = await StartAsync(server, Writer(stop, "echo end"));
        using var follower = new LiveWorker(["--config", config, "logs", "-f", id]);
        await follower.WaitForStdoutAsync(0, Token);

        // Renewed while still valid, as `step ca renew --daemon` does: key, then certificate, each renamed into place.
        using var renewed = ca.IssueClient(alice);
        PemFiles.WritePrivateKey(renewed, key);
        PemFiles.WriteCertificate(renewed, cert);

        // The server closes the connection once the old certificate has expired; the follower comes back with the new one.
        await follower.WaitForStderrAsync("reconnected to", Token);
        Assert.True(DateTime.UtcNow >= shortLived.NotAfter.ToUniversalTime(), "the follower reconnected before its first certificate expired");
        await server.WaitForOutputAsync("expired at", Token);
        var beforeStop = follower.StdoutLength;
        await follower.WaitForStdoutAsync(beforeStop, Token);
        await StopWriterAndAssertFollowedEveryByteOnceAsync(server, follower, stop, id);
    }

    /// <summary>Ends the writer (its stop file), then checks the follower wrote the whole log once and said only notices.</summary>
    private static async Task StopWriterAndAssertFollowedEveryByteOnceAsync(RestartableServer server, LiveWorker follower, string stop, string id)
    {
        await File.WriteAllTextAsync(stop, string.Empty, Token);
        var result = await follower.WaitForExitAsync(Token);

        WorkerResult.AssertExit(0, result);
        AssertSameBytes(server.LogFile(id), result.StdoutBytes);
        AssertNumberedLines(result.Stdout, first: 1, last: "end");
        AssertOnlyNotices(result.Stderr, "logs", server, id);
    }

    /// <summary>A job that writes numbered lines without pause until <paramref name="stop"/> exists, then runs <paramref name="end"/>.</summary>
    private static string Writer(string stop, string end) => $"i=0; while [ ! -e {stop} ]; do i=$((i+1)); echo \"line $i\"; sleep 0.01; done; {end}";

    private static async Task<string> StartAsync(RestartableServer server, string script)
    {
        var start = await server.WorkerAsync("start", "--", "/bin/sh", "-c", script);
        WorkerResult.AssertExit(0, start);
        return start.Stdout.Trim();
    }

    private static string SingleJob(RestartableServer server)
        => Guid.Parse(Path.GetFileName(Directory.GetDirectories(Path.Combine(server.StateDirectory, "jobs")).Single())).ToString("D");

    /// <summary>Once output flows: stops the server with <paramref name="signal"/>, starts it again after <see cref="Down"/>,
    /// and waits until the CLI has said so and output flows again.</summary>
    private static async Task RestartUnderAsync(RestartableServer server, LiveWorker worker, int signal)
    {
        await worker.WaitForStdoutAsync(0, Token);
        await server.StopAsync(signal, Token);
        await worker.WaitForStderrAsync("lost the connection", Token);
        await Task.Delay(Down, Token);
        var beforeRestart = worker.StdoutLength;
        await server.StartAsync(Token);
        await worker.WaitForStderrAsync("reconnected to", Token);
        await worker.WaitForStdoutAsync(beforeRestart, Token);
    }

    private static void AssertSameBytes(byte[] expected, byte[] actual)
    {
        Assert.True(expected.Length > 0, "the job wrote nothing");
        Assert.Equal(expected.Length, actual.Length);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(expected)), Convert.ToHexString(SHA256.HashData(actual)));
    }

    /// <summary>"line N" for every N from <paramref name="first"/> on, each once and in order, then <paramref name="last"/>.</summary>
    private static void AssertNumberedLines(string text, int first, string last)
    {
        var lines = text.Split('\n');
        Assert.Equal(string.Empty, lines[^1]);
        Assert.Equal(last, lines[^2]);
        for (var i = 0; i < lines.Length - 2; i++)
        {
            Assert.Equal($"line {first + i}", lines[i]);
        }
    }

    /// <summary>Stderr holds only the notices of the reconnection (stdout holds only the job's bytes), the last one
    /// saying that the follower resumed.</summary>
    private static void AssertOnlyNotices(string stderr, string verb, RestartableServer server, string id)
    {
        var address = server.Address.ToString().TrimEnd('/');
        var lines = stderr.TrimEnd('\n').Split('\n');
        Assert.True(lines.Length >= 2, $"expected a notice of the lost connection and one of the reconnection, got: {stderr}");
        Assert.Equal($"worker {verb}: lost the connection to {address}; reconnecting for up to 60s", lines[0]);
        Assert.All(lines, line => Assert.True(
            line.StartsWith($"worker {verb}: lost the connection to {address}; reconnecting for up to ", StringComparison.Ordinal)
                || line.StartsWith($"worker {verb}: reconnected to {address}; resuming job {id} at byte ", StringComparison.Ordinal),
            $"unexpected line on stderr: {line}"));
        Assert.StartsWith($"worker {verb}: reconnected to {address}", lines[^1], StringComparison.Ordinal);
    }
}
