using System.Net.Security;
using System.Security.Authentication;
using System.Text.Json;
using Grpc.Net.Client;
using JobWorker.Pki;
using JobWorker.Protocol.V1;

namespace JobWorker.Cli.Tests;

/// <summary>
/// <c>worker list</c> over pages with its filters, and how the real binary reports the server's limits: each test
/// runs its own server, so the job counts and limits are its own.
/// </summary>
public sealed class ListAndLimitsTests : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    private static string Tp => ServerFixture.TestProcess;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 300_000)]
    public async Task List_MoreJobsThanOnePage_AllOnceInOrderWithStateOwnerAndLimit()
    {
        await using var server = new ServerFixture();
        await server.InitializeAsync();
        var alice = Client(server, ServerFixture.Alice);
        // More than the CLI's page (250): the listing takes two pages.
        var started = new List<string>();
        for (var i = 0; i < 260; i++)
        {
            started.Add((await alice.StartJobAsync(new StartJobRequest { Command = Tp, Args = { "exit", "0" } }, cancellationToken: Token)).Job.JobId);
        }

        var running = (await alice.StartJobAsync(new StartJobRequest { Command = Tp, Args = { "sleep", "60" } }, cancellationToken: Token)).Job.JobId;
        var bobs = (await Client(server, ServerFixture.Bob).StartJobAsync(new StartJobRequest { Command = Tp, Args = { "exit", "0" } }, cancellationToken: Token)).Job.JobId;
        foreach (var id in started.Append(bobs))
        {
            while ((await Client(server, ServerFixture.Admin).GetJobAsync(new GetJobRequest { JobId = id }, cancellationToken: Token)).Job.State == JobState.Running)
            {
                await Task.Delay(20, Token);
            }
        }

        try
        {
            var all = await server.WorkerAsync(ServerFixture.Alice, "list", "--json");
            var exited = await server.WorkerAsync(ServerFixture.Alice, "list", "--state", "exited", "--json");
            var runningOnly = await server.WorkerAsync(ServerFixture.Alice, "list", "--state", "running,stopped");
            var limited = await server.WorkerAsync(ServerFixture.Alice, "list", "--limit", "255", "--json");
            var adminForBob = await server.WorkerAsync(ServerFixture.Admin, "list", "--owner", "bob", "--json");
            var aliceForBob = await server.WorkerAsync(ServerFixture.Alice, "list", "--owner", "bob");
            var badState = await server.WorkerAsync(ServerFixture.Alice, "list", "--state", "finished");

            Assert.Equal([.. started, running], Ids(all));
            Assert.Equal(started, Ids(exited));
            WorkerResult.AssertExit(0, runningOnly);
            Assert.Equal(2, runningOnly.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
            Assert.Contains(running, runningOnly.Stdout, StringComparison.Ordinal);
            Assert.Equal(started[..255], Ids(limited));
            Assert.Equal([bobs], Ids(adminForBob));
            WorkerResult.AssertExit(5, aliceForBob);
            Assert.Equal("worker list: permission denied: role 'user' may list only its own jobs, not those of 'bob'\n", aliceForBob.Stderr);
            WorkerResult.AssertExit(2, badState);
            Assert.Contains("--state: 'finished' is not a state; use running, exited, signaled or stopped", badState.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            await alice.StopJobAsync(new StopJobRequest { JobId = running }, cancellationToken: Token);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task List_JobWithLongArgs_TableMarksTheCutJsonIsExact()
    {
        await using var server = new ServerFixture();
        await server.InitializeAsync();
        string[] args = ["sleep", "60", .. Enumerable.Range(0, 4).Select(i => new string((char)('a' + i), 1000))];
        var start = await server.WorkerAsync(ServerFixture.Alice, ["start", "--", Tp, .. args]);
        WorkerResult.AssertExit(0, start);
        var id = start.Stdout.Trim();
        try
        {
            var json = await server.WorkerAsync(ServerFixture.Alice, "list", "--json");
            var table = await server.WorkerAsync(ServerFixture.Alice, "list");

            WorkerResult.AssertExit(0, json);
            using var document = JsonDocument.Parse(json.Stdout);
            var job = Assert.Single(document.RootElement.EnumerateArray());
            Assert.Equal(args, job.GetProperty("args").EnumerateArray().Select(a => a.GetString()));
            Assert.False(job.TryGetProperty("argsTruncated", out _));
            WorkerResult.AssertExit(0, table);
            var row = table.Stdout.Split('\n')[1];
            Assert.EndsWith($" sleep 60 {args[2]} {new string('b', 1024 - 7 - 1000)} …", row, StringComparison.Ordinal);
        }
        finally
        {
            await server.WorkerAsync(ServerFixture.Alice, "stop", "--grace", "0s", id);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_OverTheRateLimit_Exit5WithTheLimitAndWhenToRetry()
    {
        await using var server = new ServerFixture
        {
            Settings = { ["RateLimits:User:StartJobBurst"] = "1", ["RateLimits:User:StartJobsPerSecond"] = "0.1" },
        };
        await server.InitializeAsync();

        var first = await server.WorkerAsync(ServerFixture.Alice, "start", "--", Tp, "exit", "0");
        var second = await server.WorkerAsync(ServerFixture.Alice, "start", "--", Tp, "exit", "0");

        WorkerResult.AssertExit(0, first);
        WorkerResult.AssertExit(5, second);
        // One start per 10 s: the wait is what is left of those 10 s when the second start came, in whole seconds.
        Assert.Matches(
            @"^worker start: user 'alice' starts jobs faster than allowed \(1 at once, then 0\.1 per second; RateLimits:User:StartJobBurst and StartJobsPerSecond\); retry in ([1-9]|10) s\n$",
            second.Stderr);
        var wait = int.Parse(second.Stderr.Split("retry in ")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        await Task.Delay(TimeSpan.FromSeconds(wait + 0.2), Token);
        WorkerResult.AssertExit(0, await server.WorkerAsync(ServerFixture.Alice, "start", "--", Tp, "exit", "0"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Logs_OverTheStreamCap_Exit5NamingTheCap()
    {
        await using var server = new ServerFixture { Settings = { ["RateLimits:User:MaxOpenStreams"] = "1" } };
        await server.InitializeAsync();
        var alice = Client(server, ServerFixture.Alice);
        var id = (await alice.StartJobAsync(new StartJobRequest { Command = Tp, Args = { "echo", "x", "sleep", "60" } }, cancellationToken: Token)).Job.JobId;
        try
        {
            using var follower = alice.StreamOutput(new StreamOutputRequest { JobId = id, Follow = true }, cancellationToken: Token);
            await follower.ResponseHeadersAsync;

            var refused = await server.WorkerAsync(ServerFixture.Alice, "logs", id);

            WorkerResult.AssertExit(5, refused);
            Assert.Equal(
                "worker logs: user 'alice' already has 1 output streams open, the most allowed (RateLimits:User:MaxOpenStreams); close one (a 'worker logs -f' or 'worker run') or retry in 5 s\n",
                refused.Stderr);
        }
        finally
        {
            await alice.StopJobAsync(new StopJobRequest { JobId = id }, cancellationToken: Token);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Status_OverTheConnectionCap_Exit5NamingTheCap()
    {
        await using var server = new ServerFixture { Settings = { ["RateLimits:User:MaxConnections"] = "1" } };
        await server.InitializeAsync();
        // Alice's one connection, held open while the worker tries a second.
        var alice = Client(server, ServerFixture.Alice);
        var id = (await alice.StartJobAsync(new StartJobRequest { Command = Tp, Args = { "exit", "0" } }, cancellationToken: Token)).Job.JobId;

        var refused = await server.WorkerAsync(ServerFixture.Alice, "status", id);
        var bobs = await server.WorkerAsync(ServerFixture.Bob, "status", id);

        WorkerResult.AssertExit(5, refused);
        Assert.Equal(
            "worker status: user 'alice' already has 1 connections open, the most allowed (RateLimits:User:MaxConnections); close one (another 'worker' command, such as a 'worker logs -f') or retry in 5 s\n",
            refused.Stderr);
        // Bob has a cap of his own (his status of alice's job is NotFound, not refused).
        Assert.DoesNotContain("connections open", bobs.Stderr, StringComparison.Ordinal);
        Assert.Contains("not found", bobs.Stderr, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task Logs_TailBeyondTheServersWindow_NoteOnStderrBytesOnStdout()
    {
        await using var server = new ServerFixture();
        await server.InitializeAsync();
        var start = await server.WorkerAsync(ServerFixture.Alice, "start", "--", "/bin/sh", "-c", $"yes {new string('y', 63)} | head -c {2 << 20}");
        WorkerResult.AssertExit(0, start);
        var id = start.Stdout.Trim();
        var alice = Client(server, ServerFixture.Alice);
        while ((await alice.GetJobAsync(new GetJobRequest { JobId = id }, cancellationToken: Token)).Job.State == JobState.Running)
        {
            await Task.Delay(20, Token);
        }

        var tail = await server.WorkerAsync(ServerFixture.Alice, "logs", "--tail", "100000", id);

        WorkerResult.AssertExit(0, tail);
        Assert.Equal(1 << 20, tail.StdoutBytes.Length);
        Assert.Equal(
            $"worker logs: fewer lines than asked: the server looks back at most 1 MiB for --tail, so the output starts at byte {1 << 20}. Use --from-offset 0 for all of it\n",
            tail.Stderr);
    }

    [Fact(Timeout = 60_000)]
    public async Task Describe_AnswerLargerThanTheClientAccepts_SaysSoNotOutOfResources()
    {
        await using var server = new ServerFixture();
        await server.InitializeAsync();
        var alice = Client(server, ServerFixture.Alice);
        var id = (await alice.StartJobAsync(new StartJobRequest { Command = Tp, Args = { "exit", "0" } }, cancellationToken: Token)).Job.JobId;
        // The real client library refusing a real answer: a channel that accepts less than one list entry.
        var small = Client(server, ServerFixture.Alice, maxReceiveMessageSize: 64);

        var e = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () => await small.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token));
        var message = Infrastructure.ErrorReporter.Describe(e, null);

        Assert.Equal(Grpc.Core.StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Equal(
            "the answer from the server is larger than this client accepts (16 MiB): nothing is wrong with the server's resources. An older server sends every job in one answer: upgrade it, or remove ended jobs (worker rm)",
            message);
        Assert.NotEmpty(id);
    }

    public void Dispose()
    {
        foreach (var owned in _owned)
        {
            owned.Dispose();
        }
    }

    private static List<string> Ids(WorkerResult result)
    {
        WorkerResult.AssertExit(0, result);
        using var document = JsonDocument.Parse(result.Stdout);
        return [.. document.RootElement.EnumerateArray().Select(j => j.GetProperty("id").GetString()!)];
    }

    private Protocol.V1.JobWorker.JobWorkerClient Client(ServerFixture server, string user, int? maxReceiveMessageSize = null)
    {
        var certificate = PemFiles.LoadCertificateWithKey(server.Pki.ClientCertificate(user), server.Pki.ClientKey(user));
        var ca = PemFiles.LoadCertificate(server.Pki.CaCertificate);
        _owned.Add(certificate);
        _owned.Add(ca);
        var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                EnabledSslProtocols = SslProtocols.Tls13,
                ClientCertificates = [certificate],
                RemoteCertificateValidationCallback = (_, presented, _, _) =>
                    presented is System.Security.Cryptography.X509Certificates.X509Certificate2 cert && CertificateTrust.Verify(cert, ca, Oids.ServerAuthentication) is null,
            },
        };
        var channel = GrpcChannel.ForAddress(server.Address, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true, MaxReceiveMessageSize = maxReceiveMessageSize ?? 4 << 20 });
        _owned.Insert(0, channel);
        return new(channel);
    }
}
