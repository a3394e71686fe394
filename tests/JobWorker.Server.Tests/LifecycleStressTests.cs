using System.Collections.Concurrent;
using System.Globalization;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>
/// The lifecycle stress tests run alone: they count the process's file descriptors, which other tests running in
/// parallel in the same process would change.
/// </summary>
[CollectionDefinition(nameof(LifecycleStressGroup), DisableParallelization = true)]
public sealed class LifecycleStressGroup;

/// <summary>
/// Races between a job's own exit, StopJob, RemoveJob and followers attaching and detaching, over the real server,
/// many rounds (run by <c>make race_test</c>, and by CI with every other test). Each round checks that every client
/// saw a consistent end and that nothing leaked: no job process, cgroup, log file, open stream or file descriptor.
/// </summary>
[Trait("Category", "Stress")]
[Collection(nameof(LifecycleStressGroup))]
public sealed class LifecycleStressTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient _client = null!;
    private List<string> _baselineFds = [];

    // What the rounds ran into (written to the test's output, so a run shows which interleavings it covered).
    private readonly ConcurrentDictionary<string, int> _seen = new(StringComparer.Ordinal);

    private enum Kind
    {
        /// <summary>Prints, sleeps briefly and exits with its own code; nobody stops it.</summary>
        Exits,

        /// <summary>Prints and sleeps for 30 s: only a stop ends it.</summary>
        Stopped,

        /// <summary>Prints, sleeps briefly and exits, while stops arrive around the same moment.</summary>
        StopRacesExit,
    }

    private enum Outcome
    {
        Completed,
        Detached,
        Removed,
    }

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    // The shared frameworks' directory (Microsoft.NETCore.App, Microsoft.AspNetCore.App): assemblies load lazily.
    private static string RuntimeDirectory { get; } = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetDirectoryName(typeof(object).Assembly.Location)))! + "/";

    private string LogDirectory => Path.Combine(_server.Directory, "logs", "jobs");

    public async ValueTask InitializeAsync()
    {
        // Thousands of calls: only warnings and errors go to the test's output.
        _server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Logging:LogLevel:JobWorker"] = "Warning" }, Token);
        _client = _server.Client(TestServer.Alice);

        // One job through every call first, so the connection, the thread pool and the runner's own descriptors
        // exist before the baseline is taken.
        var job = await StartAsync("echo", "warm-up");
        await FollowAsync(job.JobId, attachDelayMs: 0, detachAfterMs: null, printed: false);
        await _client.RemoveJobAsync(new RemoveJobRequest { JobId = job.JobId }, cancellationToken: Token);
        await WaitUntilAsync(() => _server.Metrics.StreamsActive == 0, () => "the warm-up stream did not close");
        _baselineFds = OpenFds();
    }

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    /// <summary>What <c>worker run --rm</c> does: follow to the final status, then remove at once.</summary>
    [Fact(Timeout = 120_000)]
    public async Task RemoveJob_RightAfterFinalStatus_ManyCycles_NeverStillRunning()
    {
        const int Cycles = 800;
        const int Parallel = 4;
        var refused = 0;
        var next = 0;

        async Task WorkerAsync()
        {
            while (Interlocked.Increment(ref next) <= Cycles)
            {
                var started = await StartAsync("echo", "x");
                var follower = await FollowAsync(started.JobId, attachDelayMs: 0, detachAfterMs: null, printed: false);
                Assert.Equal(Outcome.Completed, follower.Outcome);
                Assert.Equal("x\n"u8.ToArray(), follower.Data);
                try
                {
                    await _client.RemoveJobAsync(new RemoveJobRequest { JobId = started.JobId }, cancellationToken: Token);
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition)
                {
                    Interlocked.Increment(ref refused);
                    await Task.Delay(100, Token);
                    await _client.RemoveJobAsync(new RemoveJobRequest { JobId = started.JobId }, cancellationToken: Token);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Parallel).Select(_ => Task.Run(WorkerAsync, Token)));

        Assert.Equal(0, refused);
        await AssertNothingLeakedAsync();
    }

    /// <summary>
    /// Rounds of jobs that exit, are stopped, or exit while being stopped; followers attach at random moments and
    /// some detach; a reader without follow polls from where it got to; the job is removed as soon as one follower
    /// has its final status (some followers are then still streaming).
    /// </summary>
    [Fact(Timeout = 180_000)]
    public async Task Lifecycle_ExitStopRemoveAndFollowersInterleaved_ConsistentEndsAndNothingLeaks()
    {
        const int Rounds = 30;
        const int JobsPerRound = 8;
        var seed = int.TryParse(Environment.GetEnvironmentVariable("JOBWORKER_STRESS_SEED"), out var chosen) ? chosen : Environment.TickCount;
        TestContext.Current.TestOutputHelper?.WriteLine($"seed {seed}");
        var random = new Random(seed);
        for (var round = 0; round < Rounds; round++)
        {
            var plans = Enumerable.Range(0, JobsPerRound).Select(_ => Plan.Random(random)).ToList();
            await Task.WhenAll(plans.Select(plan => Task.Run(() => RunJobAsync(plan), Token)));
            await AssertNothingLeakedAsync();
        }

        TestContext.Current.TestOutputHelper?.WriteLine(string.Join(", ", _seen.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}: {kv.Value}")));
    }

    /// <summary>
    /// Followers still streaming a large log when the job is removed: each gets the bytes up to where it was, then
    /// NotFound (or everything, if it was fast enough); a follower that comes later gets NotFound at once.
    /// </summary>
    [Fact(Timeout = 120_000)]
    public async Task RemoveJob_WhileFollowersStream_FollowersGetNotFoundAndNothingLeaks()
    {
        const int Rounds = 12;
        const int Bytes = 4 << 20;
        for (var round = 0; round < Rounds; round++)
        {
            var job = await StartAsync("print", Bytes.ToString(CultureInfo.InvariantCulture), "exit", "0");
            await JobRpcTests.WaitForEndAsync(_client, job.JobId);

            // Two followers stop reading after their first message, so the server is blocked writing to them (HTTP/2
            // flow control); one reads as fast as it can.
            var resume = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var firstMessages = new List<Task>();
            var followers = new List<Task<FollowResult>>();
            for (var i = 0; i < 3; i++)
            {
                var firstMessage = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                firstMessages.Add(firstMessage.Task);
                followers.Add(FollowAsync(job.JobId, attachDelayMs: 0, detachAfterMs: null, afterFirst: i < 2 ? resume.Task : null, firstMessage: firstMessage));
            }

            await Task.WhenAll(firstMessages).WaitAsync(TimeSpan.FromSeconds(30), Token);
            await _client.RemoveJobAsync(new RemoveJobRequest { JobId = job.JobId }, cancellationToken: Token);
            var late = await FollowAsync(job.JobId, attachDelayMs: 0, detachAfterMs: null);
            resume.SetResult();
            var results = await Task.WhenAll(followers);

            Assert.Equal(Outcome.Removed, late.Outcome);
            Assert.Empty(late.Data);
            Assert.Equal(Outcome.Removed, results[0].Outcome);
            Assert.Equal(Outcome.Removed, results[1].Outcome);
            Assert.All(results[..2], r => Assert.InRange(r.Data.Length, 1, Bytes - 1));
            Assert.All(results[..2], r => Assert.Contains("removed while its output was being read", r.Detail, StringComparison.Ordinal));
            if (results[2].Outcome == Outcome.Completed)
            {
                Assert.Equal(Bytes, results[2].Data.Length);
                Assert.Equal(Bytes, results[2].Final?.LogBytes);
            }
            else
            {
                Assert.Equal(Outcome.Removed, results[2].Outcome);
            }

            await AssertRemovedAsync(job.JobId);
            await AssertNothingLeakedAsync();
        }
    }

    private async Task RunJobAsync(Plan plan)
    {
        var started = await StartAsync(plan.Arguments());
        var id = started.JobId;
        var primary = FollowAsync(id, attachDelayMs: 0, detachAfterMs: null);
        var others = plan.Followers.Select(f => FollowAsync(id, f.AttachDelayMs, f.DetachAfterMs)).ToList();
        var reader = plan.PollingReader ? PollWithoutFollowAsync(id) : Task.FromResult<PollResult?>(null);
        if (plan.RemoveWhileRunning)
        {
            var refused = await Assert.ThrowsAsync<RpcException>(async () => await _client.RemoveJobAsync(new RemoveJobRequest { JobId = id }, cancellationToken: Token));
            Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        }

        var stops = plan.StopDelaysMs.Select(delay => StopAsync(id, delay, plan.StopGrace)).ToList();

        // worker run --rm: follow to the final status, remove at once; other clients may still be reading.
        var first = await primary;
        Assert.Equal(Outcome.Completed, first.Outcome);
        var final = first.Final!;
        if (plan.GetBeforeRemove)
        {
            Assert.Equal(final, (await _client.GetJobAsync(new GetJobRequest { JobId = id }, cancellationToken: Token)).Job);
        }

        await _client.RemoveJobAsync(new RemoveJobRequest { JobId = id }, cancellationToken: Token);
        await AssertRemovedAsync(id);

        AssertFinalMatchesPlan(plan, final);
        Assert.Equal(final.LogBytes, first.Data.Length);
        Count($"{plan.Kind} ended {final.State}");
        foreach (var other in await Task.WhenAll(others))
        {
            Count($"follower {other.Outcome}");
            if (other.Outcome == Outcome.Completed)
            {
                Assert.Equal(final, other.Final);
                Assert.Equal(first.Data, other.Data);
            }
        }

        if (await reader is { } poll)
        {
            Count(poll.Final is null ? "reader without follow saw the removal" : "reader without follow got the final status");
        }

        if (await reader is { } ended && ended.Final is not null)
        {
            Assert.Equal(final, ended.Final);
            Assert.Equal(final.LogBytes, ended.Bytes);
        }

        foreach (var stopped in await Task.WhenAll(stops))
        {
            Count(stopped is null ? "stop after the removal" : "stop answered");
            if (stopped is not null)
            {
                Assert.Equal(final, stopped); // else it came after the removal: NotFound
            }
        }
    }

    private void Count(string what) => _seen.AddOrUpdate(what, 1, (_, n) => n + 1);

    private static void AssertFinalMatchesPlan(Plan plan, JobStatus final)
    {
        Assert.NotNull(final.EndedAt);
        Assert.True(final.EndedAt >= final.StartedAt);
        Assert.InRange(final.LogBytes, 0, plan.Bytes);
        switch (plan.Kind)
        {
            case Kind.Exits:
                Assert.Equal(JobState.Exited, final.State);
                Assert.Equal(plan.ExitCode, final.ExitCode);
                Assert.Equal(plan.Bytes, final.LogBytes);
                break;
            case Kind.Stopped:
                Assert.Equal(JobState.Stopped, final.State);
                // SIGTERM, or SIGKILL after the grace; a job that ignores SIGTERM may get it before it could.
                Assert.True(final.HasSignal, $"a stopped job that sleeps dies of a signal, not {final}");
                Assert.Contains(final.Signal, new[] { 9, 15 });
                break;
            case Kind.StopRacesExit:
                // A stop that came first makes it Stopped (by a signal, or by its own exit after the request); a
                // stop that came after the main process exited changes nothing.
                Assert.Contains(final.State, new[] { JobState.Stopped, JobState.Exited });
                if (final.State == JobState.Exited || !final.HasSignal)
                {
                    Assert.Equal(plan.ExitCode, final.ExitCode);
                    Assert.Equal(plan.Bytes, final.LogBytes);
                }
                else
                {
                    Assert.Contains(final.Signal, new[] { 9, 15 });
                }

                break;
        }
    }

    private async Task AssertRemovedAsync(string id)
    {
        async Task AssertNotFoundAsync(Func<Task> call)
            => Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(call)).StatusCode);

        await AssertNotFoundAsync(async () => await _client.GetJobAsync(new GetJobRequest { JobId = id }, cancellationToken: Token));
        await AssertNotFoundAsync(async () => await _client.StopJobAsync(new StopJobRequest { JobId = id }, cancellationToken: Token));
        await AssertNotFoundAsync(async () => await _client.RemoveJobAsync(new RemoveJobRequest { JobId = id }, cancellationToken: Token));
        Assert.Equal(Outcome.Removed, (await FollowAsync(id, attachDelayMs: 0, detachAfterMs: null)).Outcome);
        Assert.DoesNotContain((await _client.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs, j => j.JobId == id);
    }

    /// <summary>
    /// One StreamOutput with follow. Checks as it goes that the bytes are contiguous from 0, are what the test
    /// process's "print" writes (unless <paramref name="printed"/> is false), and that nothing follows the final status.
    /// </summary>
    private async Task<FollowResult> FollowAsync(string id, int attachDelayMs, int? detachAfterMs, Task? afterFirst = null, TaskCompletionSource? firstMessage = null, bool printed = true)
    {
        await Task.Delay(attachDelayMs, Token);
        using var detach = CancellationTokenSource.CreateLinkedTokenSource(Token);
        if (detachAfterMs is int ms)
        {
            detach.CancelAfter(ms);
        }

        using var data = new MemoryStream();
        JobStatus? final = null;
        try
        {
            using var call = _client.StreamOutput(new StreamOutputRequest { JobId = id, Follow = true }, cancellationToken: detach.Token);
            while (await call.ResponseStream.MoveNext(detach.Token))
            {
                var message = call.ResponseStream.Current;
                Assert.Null(final);
                if (message.KindCase == StreamOutputResponse.KindOneofCase.FinalStatus)
                {
                    final = message.FinalStatus;
                    continue;
                }

                Assert.Equal(data.Length, message.Chunk.Offset);
                message.Chunk.Data.WriteTo(data);
                if (printed)
                {
                    AssertPrinted(data);
                }

                if (firstMessage is not null && firstMessage.TrySetResult() && afterFirst is not null)
                {
                    await afterFirst.WaitAsync(Token);
                }
            }

            Assert.NotNull(final);
            return new FollowResult(Outcome.Completed, data.ToArray(), final, "");
        }
        // Detaching (cancelling the call) while a read is in progress sometimes surfaces in the client as
        // "Unavailable: The request was aborted" (HttpClient's abort, mapped by Grpc.Net.Client), not Cancelled.
        catch (Exception e) when (detach.IsCancellationRequested && !Token.IsCancellationRequested
            && e is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled or StatusCode.Unavailable })
        {
            return new FollowResult(Outcome.Detached, data.ToArray(), null, "");
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            firstMessage?.TrySetResult();
            return new FollowResult(Outcome.Removed, data.ToArray(), null, e.Status.Detail);
        }
    }

    /// <summary>
    /// Reads without follow from where the previous read got to, until a read ends with the final status (which
    /// must then come after the last byte of the log) or the job is removed.
    /// </summary>
    private async Task<PollResult?> PollWithoutFollowAsync(string id)
    {
        using var data = new MemoryStream();
        for (var reads = 0; reads < 2000; reads++)
        {
            try
            {
                using var call = _client.StreamOutput(new StreamOutputRequest { JobId = id, FromOffset = data.Length }, cancellationToken: Token);
                await foreach (var message in call.ResponseStream.ReadAllAsync(Token))
                {
                    if (message.KindCase == StreamOutputResponse.KindOneofCase.FinalStatus)
                    {
                        Assert.Equal(message.FinalStatus.LogBytes, data.Length); // the final status means "that was all"
                        return new PollResult(data.Length, message.FinalStatus);
                    }

                    Assert.Equal(data.Length, message.Chunk.Offset);
                    message.Chunk.Data.WriteTo(data);
                    AssertPrinted(data);
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
                return new PollResult(data.Length, null);
            }

            await Task.Delay(5, Token);
        }

        throw new InvalidOperationException($"job {id}: 2000 reads without follow saw neither the final status nor the removal");
    }

    /// <summary>Starts the test process on the one connection all calls share (a new client would open a new one).</summary>
    private async Task<JobStatus> StartAsync(params string[] steps)
    {
        var request = new StartJobRequest { Command = TestServer.TestProcess };
        request.Args.AddRange(steps);
        return (await _client.StartJobAsync(request, cancellationToken: Token)).Job;
    }

    private async Task<JobStatus?> StopAsync(string id, int delayMs, TimeSpan grace)
    {
        await Task.Delay(delayMs, Token);
        try
        {
            return (await _client.StopJobAsync(new StopJobRequest { JobId = id, Grace = Duration.FromTimeSpan(grace) }, cancellationToken: Token)).Job;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            return null; // the job had already ended and been removed
        }
    }

    /// <summary>The bytes are a prefix of what the test process's "print N" writes.</summary>
    private static void AssertPrinted(MemoryStream data)
    {
        var bytes = data.GetBuffer().AsSpan(0, (int)data.Length);
        var expected = JobRpcTests.ExpectedPrint(bytes.Length);
        Assert.True(bytes.SequenceEqual(expected), $"the output differs from what the job printed, within its first {bytes.Length} bytes");
    }

    /// <summary>With no job left: no job process, cgroup, log file, open stream, or file descriptor more than before.</summary>
    private async Task AssertNothingLeakedAsync()
    {
        // A user's start made ready (groups and an idle supervisor for the user's next job) holds no job: discarded first.
        _server.Host.Runner.DiscardStartsAhead();
        Assert.Empty(_server.Host.Runner.Jobs);
        Assert.Equal(0, _server.Host.RunningJobs(TestServer.Alice));
        Assert.Empty(JobProcesses());
        Assert.Empty(Directory.GetDirectories(_server.CgroupRoot));
        Assert.Empty(Directory.GetFileSystemEntries(LogDirectory));

        // A stream's handler ends just after its last message reached the client.
        await WaitUntilAsync(() => _server.Metrics.StreamsActive == 0, () => $"{_server.Metrics.StreamsActive} streams still open");
        await WaitUntilAsync(
            () => OpenFds().Count <= _baselineFds.Count,
            () => $"{OpenFds().Count} file descriptors open, {_baselineFds.Count} before; new: {string.Join(", ", OpenFds().Except(_baselineFds))}");
    }

    /// <summary>Processes in the server's cgroup subtree, whoever they run as (job processes cannot leave it).</summary>
    private List<string> JobProcesses()
    {
        var subtree = "0::" + _server.CgroupRoot[TestServer.CgroupMount.Length..] + "/";
        var found = new List<string>();
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out _))
            {
                continue;
            }

            try
            {
                if (File.ReadLines(Path.Combine(proc, "cgroup")).Any(line => line.StartsWith(subtree, StringComparison.Ordinal)))
                {
                    found.Add($"{Path.GetFileName(proc)} ({File.ReadAllText(Path.Combine(proc, "comm")).Trim()})");
                }
            }
            catch (IOException)
            {
                // gone meanwhile
            }
        }

        return found;
    }

    /// <summary>
    /// What each of the process's file descriptors points to (socket:[…], pipe:[…], anon_inode:[pidfd], a path …),
    /// except files of the application and the runtime (assemblies, native libraries, symbols for a stack trace):
    /// the runtime opens those on first use and keeps them.
    /// </summary>
    private static List<string> OpenFds()
    {
        var targets = new List<string>();
        foreach (var fd in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            try
            {
                var target = new FileInfo(fd).LinkTarget ?? "?";
                if (!target.StartsWith(AppContext.BaseDirectory, StringComparison.Ordinal) && !target.StartsWith(RuntimeDirectory, StringComparison.Ordinal))
                {
                    targets.Add(target);
                }
            }
            catch (IOException)
            {
                // the enumeration's own descriptor, closed by now
            }
        }

        return targets;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, Func<string> failure)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure());
            await Task.Delay(20, Token);
        }
    }

    private sealed record FollowResult(Outcome Outcome, byte[] Data, JobStatus? Final, string Detail);

    private sealed record PollResult(long Bytes, JobStatus? Final);

    private sealed record Follower(int AttachDelayMs, int? DetachAfterMs);

    private sealed record Plan(
        Kind Kind,
        int Bytes,
        double SleepSeconds,
        int ExitCode,
        bool IgnoreSigterm,
        IReadOnlyList<Follower> Followers,
        IReadOnlyList<int> StopDelaysMs,
        TimeSpan StopGrace,
        bool RemoveWhileRunning,
        bool PollingReader,
        bool GetBeforeRemove)
    {
        public static Plan Random(Random random)
        {
            var kind = (Kind)random.Next(3);
            var sleep = kind == Kind.Exits ? new[] { 0, 0.01, 0.05 }[random.Next(3)] : random.NextDouble() * 0.08;
            var ignoreSigterm = kind == Kind.Stopped && random.Next(4) == 0;
            var followers = Enumerable.Range(0, random.Next(4))
                .Select(_ => new Follower(random.Next(150), random.Next(10) < 3 ? random.Next(100) : null))
                .ToList();
            var stops = kind switch
            {
                Kind.Exits => [],
                Kind.Stopped => Enumerable.Range(0, 1 + random.Next(2)).Select(_ => random.Next(100)).ToList(),
                _ => Enumerable.Range(0, 1 + random.Next(2)).Select(_ => random.Next((int)(sleep * 1500) + 1)).ToList(),
            };
            var grace = ignoreSigterm ? TimeSpan.FromSeconds(0.2) : random.Next(2) == 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(2);
            return new Plan(
                kind,
                Bytes: random.Next(200_000),
                sleep,
                ExitCode: random.Next(100),
                ignoreSigterm,
                followers,
                stops,
                grace,
                RemoveWhileRunning: kind == Kind.Stopped && random.Next(2) == 0,
                PollingReader: random.Next(2) == 0,
                GetBeforeRemove: random.Next(2) == 0);
        }

        public string[] Arguments()
        {
            var bytes = Bytes.ToString(CultureInfo.InvariantCulture);
            return Kind == Kind.Stopped
                ? [.. IgnoreSigterm ? ["ignore-sigterm"] : Array.Empty<string>(), "print", bytes, "sleep", "30"]
                : ["print", bytes, "sleep", SleepSeconds.ToString("0.###", CultureInfo.InvariantCulture), "exit", ExitCode.ToString(CultureInfo.InvariantCulture)];
        }
    }
}
