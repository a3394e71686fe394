using System.Text;
using Grpc.Core;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>Per-user rate and concurrency limits and the bounded tail read, against a real server.</summary>
public sealed class RateLimitTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 60_000)]
    public async Task StartJob_OverTheRate_ResourceExhaustedWithRetryAfterThenRecovers()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["RateLimits:User:StartJobBurst"] = "2",
            ["RateLimits:User:StartJobsPerSecond"] = "0.2",
        }, Token);
        var alice = server.Client(TestServer.Alice);
        var request = new StartJobRequest { Command = TestServer.TestProcess, Args = { "exit", "0" } };

        await alice.StartJobAsync(request, cancellationToken: Token);
        await alice.StartJobAsync(request, cancellationToken: Token);
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await alice.StartJobAsync(request, cancellationToken: Token));
        // Another user has a budget of their own; an admin's limits are separate (off here).
        await server.Client(TestServer.Bob).StartJobAsync(request, cancellationToken: Token);
        await server.Client(TestServer.Admin).StartJobAsync(request, cancellationToken: Token);

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        // One start per 5 s refills the bucket: the wait is what is left of those 5 s, in whole seconds.
        var retryAfter = int.Parse(refused.Trailers.GetValue("retry-after")!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 5);
        Assert.Equal(
            $"user 'alice' starts jobs faster than allowed (2 at once, then 0.2 per second; RateLimits:User:StartJobBurst and StartJobsPerSecond); retry in {retryAfter} s",
            refused.Status.Detail);

        // After the hinted wait a start goes through again.
        await Task.Delay(TimeSpan.FromSeconds(retryAfter + 0.2), Token);
        var again = await alice.StartJobAsync(request, cancellationToken: Token);
        Assert.NotEmpty(again.Job.JobId);
        Assert.Contains(server.Logs.Entries, e => e.Message.Contains("answered ResourceExhausted: user 'alice' starts jobs faster", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task StreamOutput_OverTheUsersStreamCap_ResourceExhaustedUntilOneCloses()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["RateLimits:User:MaxOpenStreams"] = "2" }, Token);
        var alice = server.Client(TestServer.Alice);
        var job = await server.StartTestProcessAsync(TestServer.Alice, "echo", "x", "sleep", "30");
        using var first = alice.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token);
        await first.ResponseHeadersAsync;
        using var second = alice.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token);
        await second.ResponseHeadersAsync;

        using var third = alice.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token);
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await third.ResponseStream.MoveNext(Token));
        // Bob's streams are his own budget.
        using var bobs = server.Client(TestServer.Bob).StreamOutput(new StreamOutputRequest { JobId = job.JobId }, cancellationToken: Token);
        var bobRefused = await Assert.ThrowsAsync<RpcException>(async () => await bobs.ResponseStream.MoveNext(Token));

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Equal(
            "user 'alice' already has 2 output streams open, the most allowed (RateLimits:User:MaxOpenStreams); close one (a 'worker logs -f' or 'worker run') or retry in 5 s",
            refused.Status.Detail);
        Assert.Equal("5", refused.Trailers.GetValue("retry-after"));
        Assert.Equal(StatusCode.NotFound, bobRefused.StatusCode);

        first.Dispose();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            using var retry = alice.StreamOutput(new StreamOutputRequest { JobId = job.JobId }, cancellationToken: Token);
            try
            {
                var result = await StreamResult.ReadAsync(retry, Token);
                Assert.Equal("x\n", Encoding.ASCII.GetString(result.Data));
                break;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted && DateTime.UtcNow < deadline)
            {
                // The server learns of the cancelled stream asynchronously.
                await Task.Delay(50, Token);
            }
        }

        await alice.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Connections_OverTheUsersCap_CallsAnswerResourceExhaustedWithRetryAfterUntilOneCloses()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["RateLimits:User:MaxConnections"] = "2",
            ["RateLimits:Admin:MaxConnections"] = "3",
        }, Token);
        // Each channel is one connection (the test channels do not open a second one).
        var first = server.Channel(server.ClientCertificate(TestServer.Alice));
        var second = server.Channel(server.ClientCertificate(TestServer.Alice));
        await CheckAsync(first);
        await CheckAsync(second);

        var refused = await Assert.ThrowsAsync<RpcException>(() => CheckAsync(server.Channel(server.ClientCertificate(TestServer.Alice))));
        // Bob's connections are his own budget; admins have a cap of their own.
        await CheckAsync(server.Channel(server.ClientCertificate(TestServer.Bob)));
        await CheckAsync(server.Channel(server.ClientCertificate(TestServer.Bob)));
        for (var i = 0; i < 3; i++)
        {
            await CheckAsync(server.Channel(server.ClientCertificate(TestServer.Admin)));
        }

        var adminRefused = await Assert.ThrowsAsync<RpcException>(() => CheckAsync(server.Channel(server.ClientCertificate(TestServer.Admin))));

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Equal(
            "user 'alice' already has 2 connections open, the most allowed (RateLimits:User:MaxConnections); close one (another 'worker' command, such as a 'worker logs -f') or retry in 5 s",
            refused.Status.Detail);
        Assert.Equal("5", refused.Trailers.GetValue("retry-after"));
        Assert.Equal(StatusCode.ResourceExhausted, adminRefused.StatusCode);
        Assert.Contains("(RateLimits:Admin:MaxConnections)", adminRefused.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(server.Logs.Entries, e => e.EventId.Id == 145 && e.Message.Contains("of alice", StringComparison.Ordinal) && e.Message.Contains("RateLimits:User:MaxConnections", StringComparison.Ordinal));
        // The connections already admitted keep working.
        await CheckAsync(first);

        first.Dispose();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            try
            {
                await CheckAsync(server.Channel(server.ClientCertificate(TestServer.Alice)));
                break;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted && DateTime.UtcNow < deadline)
            {
                // The server learns of the closed connection asynchronously.
                await Task.Delay(50, Token);
            }
        }

        await CheckAsync(second);
    }

    private static async Task CheckAsync(Grpc.Net.Client.GrpcChannel channel)
    {
        var response = await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), cancellationToken: Token);
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
    }

    [Fact(Timeout = 120_000)]
    public async Task StreamOutput_HugeTailRequest_ReadsAtMostOneMibBackAndSaysSo()
    {
        await using var server = await TestServer.StartAsync(cancellationToken: Token);
        var alice = server.Client(TestServer.Alice);
        // 3 MiB of 64-byte lines.
        var line = new string('x', 63);
        var start = new StartJobRequest { Command = "/bin/sh", Args = { "-c", $"yes {line} | head -c {3 << 20}" } };
        var job = (await alice.StartJobAsync(start, cancellationToken: Token)).Job;
        JobStatus status;
        while ((status = (await alice.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job).State == JobState.Running)
        {
            await Task.Delay(20, Token);
        }

        Assert.Equal(3 << 20, status.LogBytes);
        using var tail = alice.StreamOutput(new StreamOutputRequest { JobId = job.JobId, TailLines = 1_000_000 }, cancellationToken: Token);
        var messages = new List<StreamOutputResponse>();
        await foreach (var message in tail.ResponseStream.ReadAllAsync(Token))
        {
            messages.Add(message.Clone());
        }

        using var small = alice.StreamOutput(new StreamOutputRequest { JobId = job.JobId, TailLines = 2 }, cancellationToken: Token);
        var smallResult = await StreamResult.ReadAsync(small, Token);

        var chunks = messages.Where(m => m.KindCase == StreamOutputResponse.KindOneofCase.Chunk).Select(m => m.Chunk).ToList();
        // The last MiB starts on a line boundary here (3 MiB and 1 MiB are multiples of 64): exactly 1 MiB is sent.
        Assert.Equal((3 << 20) - (1 << 20), chunks[0].Offset);
        Assert.True(chunks[0].TailBounded);
        Assert.All(chunks.Skip(1), c => Assert.False(c.TailBounded));
        Assert.Equal(1 << 20, chunks.Sum(c => c.Data.Length));
        Assert.NotNull(messages[^1].FinalStatus);
        Assert.Equal((3 << 20) - 128, smallResult.FirstOffset);
        Assert.Equal(128, smallResult.Data.Length);
    }
}
