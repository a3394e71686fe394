using System.Text;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>Every RPC's happy path (and its expected refusals) against a real server running real jobs.</summary>
public sealed class JobRpcTests : IAsyncLifetime
{
    private TestServer _server = null!;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => _server = await TestServer.StartAsync(cancellationToken: Token);

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    [Fact(Timeout = 30_000)]
    public async Task StartJob_TestProcess_RunningAndOwnedByCaller()
    {
        var client = _server.Client(TestServer.Alice);

        var job = await _server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");

        Assert.True(Guid.TryParseExact(job.JobId, "D", out _));
        Assert.Equal(JobState.Running, job.State);
        Assert.Equal(TestServer.Alice, job.Owner);
        Assert.Equal(TestServer.TestProcess, job.Command);
        Assert.Equal(["sleep", "30"], job.Args);
        Assert.True(job.Pid > 0);
        Assert.NotNull(job.StartedAt);
        Assert.Null(job.EndedAt);
        Assert.Equal(1, _server.Host.RunningJobs(TestServer.Alice));
        await client.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 30_000)]
    public async Task GetJob_EndedJob_ReportsExitCodeAndLogSize()
    {
        var client = _server.Client(TestServer.Alice);
        var started = await _server.StartTestProcessAsync(TestServer.Alice, "echo", "hello", "exit", "3");
        await WaitForEndAsync(client, started.JobId);

        var job = (await client.GetJobAsync(new GetJobRequest { JobId = started.JobId }, cancellationToken: Token)).Job;

        Assert.Equal(JobState.Exited, job.State);
        Assert.Equal(3, job.ExitCode);
        Assert.False(job.HasSignal);
        Assert.NotNull(job.EndedAt);
        Assert.Equal(6, job.LogBytes);
        Assert.False(job.LogTruncated);
    }

    [Fact(Timeout = 30_000)]
    public async Task StartJob_MissingExecutable_FailedPreconditionAndServerKeepsServing()
    {
        var client = _server.Client(TestServer.Alice);

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.StartJobAsync(new StartJobRequest { Command = "/nonexistent/program" }, cancellationToken: Token));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("/nonexistent/program", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(0, _server.Host.RunningJobs(TestServer.Alice));
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "exit", "0");
        await WaitForEndAsync(client, job.JobId);
        var ended = (await client.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job;
        Assert.Equal(JobState.Exited, ended.State);
        Assert.Equal(0, ended.ExitCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task ListJobs_OwnJobs_ListedInStartOrder()
    {
        var first = await _server.StartTestProcessAsync(TestServer.Alice, "exit", "0");
        var second = await _server.StartTestProcessAsync(TestServer.Alice, "exit", "1");

        var jobs = (await _server.Client(TestServer.Alice).ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs;

        Assert.Equal([first.JobId, second.JobId], jobs.Select(j => j.JobId));
    }

    [Fact(Timeout = 30_000)]
    public async Task StopJob_RunningJob_StoppedWithFinalStatus()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");

        var stopped = (await client.StopJobAsync(new StopJobRequest { JobId = job.JobId, Grace = Duration.FromTimeSpan(TimeSpan.FromSeconds(5)) }, cancellationToken: Token)).Job;

        Assert.Equal(JobState.Stopped, stopped.State);
        Assert.NotNull(stopped.EndedAt);
        Assert.False(Directory.Exists($"/proc/{job.Pid}"), $"process {job.Pid} still exists after StopJob returned");
        Assert.Equal(0, _server.Host.RunningJobs(TestServer.Alice));
    }

    [Fact(Timeout = 30_000)]
    public async Task StopJob_IgnoresSigterm_KilledAfterGrace()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "ignore-sigterm", "echo", "ready", "sleep", "30");
        // Wait until it has installed the handler (it prints after).
        using (var call = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token))
        {
            Assert.True(await call.ResponseStream.MoveNext(Token));
        }

        var stopped = (await client.StopJobAsync(new StopJobRequest { JobId = job.JobId, Grace = Duration.FromTimeSpan(TimeSpan.FromMilliseconds(200)) }, cancellationToken: Token)).Job;

        Assert.Equal(JobState.Stopped, stopped.State);
        Assert.Equal(9, stopped.Signal);
    }

    [Fact(Timeout = 30_000)]
    public async Task StopJob_EndedJob_ReturnsFinalStatus()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "exit", "4");
        await WaitForEndAsync(client, job.JobId);

        var stopped = (await client.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job;

        Assert.Equal(JobState.Exited, stopped.State);
        Assert.Equal(4, stopped.ExitCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task StreamOutput_FollowerBeforeOutput_GetsAllBytesThenFinalStatus()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "sleep", "0.3", "print", "300000", "exit", "0");

        using var call = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token);
        var result = await StreamResult.ReadAsync(call, Token);

        Assert.Equal(0, result.FirstOffset);
        Assert.Equal(300_000, result.Data.Length);
        Assert.Equal(ExpectedPrint(300_000), result.Data);
        Assert.NotNull(result.FinalStatus);
        Assert.Equal(JobState.Exited, result.FinalStatus.State);
        Assert.Equal(0, result.FinalStatus.ExitCode);
        Assert.Equal(300_000, result.FinalStatus.LogBytes);
    }

    [Fact(Timeout = 30_000)]
    public async Task StreamOutput_FollowerDuringOutput_SameBytesAsEarlyFollower()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "print", "5000", "sleep", "0.5", "print", "5000");
        using var early = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token);
        Assert.True(await early.ResponseStream.MoveNext(Token)); // the job has written its first part

        using var late = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token);
        var lateResult = await StreamResult.ReadAsync(late, Token);
        var earlyRest = await StreamResult.ReadAsync(early, Token);

        Assert.Equal(ExpectedPrint(5000).Concat(ExpectedPrint(5000)), lateResult.Data);
        Assert.Equal(10_000, earlyRest.FirstOffset + earlyRest.Data.Length);
        Assert.NotNull(lateResult.FinalStatus);
        Assert.NotNull(earlyRest.FinalStatus);
    }

    [Fact(Timeout = 30_000)]
    public async Task StreamOutput_AfterJobEnded_WholeLogAndFinalStatusWithoutFollow()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "print", "1000", "stderr", "500", "exit", "2");
        await WaitForEndAsync(client, job.JobId);

        using var call = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId }, cancellationToken: Token);
        var result = await StreamResult.ReadAsync(call, Token);

        Assert.Equal(1500, result.Data.Length);
        Assert.Equal(2, result.FinalStatus?.ExitCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task StreamOutput_RunningJobWithoutFollow_EndsAtCurrentEndWithoutFinalStatus()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "echo", "one", "sleep", "30");
        using (var follow = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token))
        {
            Assert.True(await follow.ResponseStream.MoveNext(Token));
        }

        using var call = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId }, cancellationToken: Token);
        var result = await StreamResult.ReadAsync(call, Token);

        Assert.Equal("one\n", Encoding.ASCII.GetString(result.Data));
        Assert.Null(result.FinalStatus);
        await client.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 30_000)]
    public async Task StreamOutput_FromOffsetAndTailLines_StartWhereAsked()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "echo", "first", "echo", "second", "echo", "third");
        await WaitForEndAsync(client, job.JobId);

        using var fromOffset = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId, FromOffset = 6 }, cancellationToken: Token);
        var offsetResult = await StreamResult.ReadAsync(fromOffset, Token);
        using var tail = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId, TailLines = 1 }, cancellationToken: Token);
        var tailResult = await StreamResult.ReadAsync(tail, Token);

        Assert.Equal(6, offsetResult.FirstOffset);
        Assert.Equal("second\nthird\n", Encoding.ASCII.GetString(offsetResult.Data));
        Assert.Equal(13, tailResult.FirstOffset);
        Assert.Equal("third\n", Encoding.ASCII.GetString(tailResult.Data));
    }

    [Fact(Timeout = 30_000)]
    public async Task StreamOutput_ClientCancels_ReaderReleasedAtOnce()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "echo", "x", "sleep", "30");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var call = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: cts.Token);
        Assert.True(await call.ResponseStream.MoveNext(Token));
        Assert.Equal(1, _server.Metrics.StreamsActive);

        await cts.CancelAsync();
        call.Dispose();

        // The server learns of the RST_STREAM asynchronously; it must release the reader within moments.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (_server.Metrics.StreamsActive != 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10, Token);
        }

        Assert.Equal(0, _server.Metrics.StreamsActive);
        await client.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task StreamOutput_150FollowersOnOneConnection_AllOpenAtOnce()
    {
        // More than Kestrel's default of 100 concurrent streams per connection: with the default, followers 101+
        // would wait (the client queues them) until earlier ones end, and this job does not end on its own.
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "print", "20000", "sleep", "30");
        var calls = Enumerable.Range(0, 150)
            .Select(_ => client.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token))
            .ToList();
        try
        {
            using var firstBytes = CancellationTokenSource.CreateLinkedTokenSource(Token);
            firstBytes.CancelAfter(TimeSpan.FromSeconds(15));
            await Task.WhenAll(calls.Select(c => c.ResponseStream.MoveNext(firstBytes.Token)));
            Assert.Equal(150, _server.Metrics.StreamsActive);

            await client.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
            var results = await Task.WhenAll(calls.Select(c => StreamResult.ReadAsync(c, Token)));

            Assert.All(results, r => Assert.Equal(JobState.Stopped, r.FinalStatus?.State));
        }
        finally
        {
            calls.ForEach(c => c.Dispose());
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task RemoveJob_EndedJob_GoneAfterwards()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "echo", "bye");
        await WaitForEndAsync(client, job.JobId);
        var logFile = Path.Combine(_server.Directory, "logs", "jobs", Guid.Parse(job.JobId).ToString("N"), "output.log");
        Assert.True(File.Exists(logFile));

        await client.RemoveJobAsync(new RemoveJobRequest { JobId = job.JobId }, cancellationToken: Token);

        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.False(File.Exists(logFile));
        Assert.DoesNotContain((await client.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs, j => j.JobId == job.JobId);
    }

    [Fact(Timeout = 30_000)]
    public async Task RemoveJob_RunningJob_FailedPrecondition()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");

        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.RemoveJobAsync(new RemoveJobRequest { JobId = job.JobId }, cancellationToken: Token));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("still running", e.Status.Detail, StringComparison.Ordinal);
        await client.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 30_000)]
    public async Task Metrics_JobsAndStreams_Counted()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "print", "4096");
        await WaitForEndAsync(client, job.JobId);

        Assert.True(_server.Metrics.JobsStarted >= 1);
        Assert.True(_server.Metrics.StreamBytes >= 4096);
        Assert.True(_server.Metrics.StreamsOpened >= 1);
    }

    internal static async Task WaitForEndAsync(global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient client, string jobId)
    {
        // Following to the end is the API's own way to wait for a job (no polling).
        using var call = client.StreamOutput(new StreamOutputRequest { JobId = jobId, Follow = true }, cancellationToken: Token);
        var result = await StreamResult.ReadAsync(call, Token);
        Assert.NotNull(result.FinalStatus);
    }

    /// <summary>What the test process's "print N" writes: 'a'..'z' cycling, every 64th byte a newline, from a 64 KiB buffer.</summary>
    internal static byte[] ExpectedPrint(int count)
    {
        var bytes = new byte[count];
        for (var i = 0; i < count; i++)
        {
            var j = i % 65536; // it writes from a 64 KiB pattern buffer
            bytes[i] = j % 64 == 63 ? (byte)'\n' : (byte)('a' + (j % 26));
        }

        return bytes;
    }
}
