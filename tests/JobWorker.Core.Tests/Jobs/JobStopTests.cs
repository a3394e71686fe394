using System.Diagnostics;
using System.Globalization;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

public sealed class JobStopTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 30_000)]
    public async Task Stop_JobHandlesSigterm_StoppedBySigtermWithinGrace()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(job, "ready", Ct);
        var watch = Stopwatch.StartNew();

        var status = await job.StopAsync(TimeSpan.FromSeconds(10), Ct);

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"stop took {watch.Elapsed}");
        Assert.Equal(JobState.Stopped, status.State);
        Assert.Equal(15, status.Signal);
        Assert.False(Directory.Exists(job.CgroupPath));
    }

    [Fact(Timeout = 30_000)]
    public async Task Stop_JobIgnoresSigterm_KilledAfterGrace()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("ignore-sigterm", "echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(job, "ready", Ct);
        var grace = TimeSpan.FromMilliseconds(700);
        var watch = Stopwatch.StartNew();

        var status = await job.StopAsync(grace, Ct);

        Assert.True(watch.Elapsed >= grace - TimeSpan.FromMilliseconds(20), $"killed after {watch.Elapsed}, before the grace");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"stop took {watch.Elapsed}");
        Assert.Equal(JobState.Stopped, status.State);
        Assert.Equal(9, status.Signal);
        Assert.False(TestRunner.ProcessExists(job.Pid));
    }

    [Fact(Timeout = 30_000)]
    public async Task Stop_SetsidEscapeeTree_NothingRemains()
    {
        await using var t = TestRunner.Create();
        // Children, plus a grandchild that left the session (setsid + double fork) and ignores SIGTERM.
        var job = t.Start("fork", "3", "detach", "echo", "ready", "sleep", "60");
        var output = await t.WaitForOutputAsync(job, "ready", Ct);
        var grandchild = int.Parse(output.Split('\n')[0].Split(' ')[1], CultureInfo.InvariantCulture);
        Assert.True(TestRunner.ProcessExists(grandchild));

        var status = await job.StopAsync(TimeSpan.FromMilliseconds(300), Ct);

        Assert.Equal(JobState.Stopped, status.State);
        Assert.False(TestRunner.ProcessExists(grandchild));
        Assert.False(Directory.Exists(job.CgroupPath));
    }

    [Fact(Timeout = 30_000)]
    public async Task Stop_ZeroGrace_KillsAtOnce()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("sleep", "60");

        var status = await job.StopAsync(TimeSpan.Zero, Ct);

        Assert.Equal(JobState.Stopped, status.State);
        Assert.Equal(9, status.Signal);
    }

    [Fact(Timeout = 30_000)]
    public async Task Stop_EndedJob_ReturnsFinalStatus()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("exit", "7");
        var final = await job.Completion.WaitAsync(Ct);

        var status = await job.StopAsync(cancellationToken: Ct);

        Assert.Same(final, status);
        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal(7, status.ExitCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task Stop_ConcurrentCalls_AllCompleteWithSameStatus()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("ignore-sigterm", "echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(job, "ready", Ct);

        var stops = Enumerable.Range(0, 20).Select(i => Task.Run(() => job.StopAsync(TimeSpan.FromMilliseconds(100 + (i * 10)), Ct), Ct));
        var statuses = await Task.WhenAll(stops);

        Assert.All(statuses, s => Assert.Same(statuses[0], s));
        Assert.Equal(JobState.Stopped, statuses[0].State);
    }

    [Fact(Timeout = 30_000)]
    public async Task Stop_CancelledWait_StopStillHappens()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("ignore-sigterm", "echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(job, "ready", Ct);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => job.StopAsync(TimeSpan.FromMilliseconds(200), cts.Token));
        var status = await job.Completion.WaitAsync(Ct);

        Assert.Equal(JobState.Stopped, status.State);
        Assert.Equal(9, status.Signal);
    }

    [Fact(Timeout = 30_000)]
    public async Task Stop_NegativeGrace_Throws()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("sleep", "60");

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => job.StopAsync(TimeSpan.FromSeconds(-1), Ct));
        await job.StopAsync(TimeSpan.Zero, Ct);
    }

    [Fact(Timeout = 30_000)]
    public async Task DisposeAsync_RunningJobs_StoppedAndSubtreeRemoved()
    {
        var t = TestRunner.Create(o => o with { DefaultStopGrace = TimeSpan.FromMilliseconds(300) });
        var polite = t.Start("sleep", "60");
        var stubborn = t.Start("ignore-sigterm", "echo", "ready", "detach", "sleep", "60");
        var output = await t.WaitForOutputAsync(stubborn, "grandchild", Ct);
        var grandchild = int.Parse(output.Split('\n')[1].Split(' ')[1], CultureInfo.InvariantCulture);
        var root = t.Runner.CgroupRoot;

        await t.DisposeAsync(); // asserts the subtree is gone

        Assert.Equal(JobState.Stopped, (await polite.Completion).State);
        Assert.Equal(JobState.Stopped, (await stubborn.Completion).State);
        Assert.False(TestRunner.ProcessExists(grandchild));
        Assert.False(Directory.Exists(root));
    }
}
