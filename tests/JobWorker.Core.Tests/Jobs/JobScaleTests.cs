using System.Diagnostics;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

/// <summary>Counts the process's fds and threads, so nothing else may run at the same time.</summary>
[CollectionDefinition("ResourceCounting", DisableParallelization = true)]
public sealed class ResourceCountingDefinition;

[Collection("ResourceCounting")]
public sealed class JobScaleTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static HashSet<string> DescribeFds()
    {
        var fds = new HashSet<string>();
        foreach (var fd in Directory.GetFiles("/proc/self/fd"))
        {
            try
            {
                fds.Add($"{Path.GetFileName(fd)}->{new FileInfo(fd).LinkTarget}");
            }
            catch (IOException)
            {
                // closed while listing
            }
        }

        return fds;
    }

    private static int Threads()
    {
        using var self = Process.GetCurrentProcess();
        return self.Threads.Count;
    }

    [Fact(Timeout = 120_000)]
    public async Task Start_200Jobs_NoFdOrThreadLeak()
    {
        await using var t = TestRunner.Create();
        // Warm up: the thread pool, the epoll and spawner threads, JIT.
        for (var i = 0; i < 5; i++)
        {
            var warmup = t.Start("print", "1000");
            await warmup.Completion.WaitAsync(Ct);
            t.Runner.Remove(warmup);
        }

        var threadsBefore = Threads(); // also loads what Process needs, before the fds are counted
        await t.WaitForSupervisorPoolAsync(Ct);
        var fdsBefore = DescribeFds();

        for (var round = 0; round < 20; round++)
        {
            var jobs = Enumerable.Range(0, 10).Select(_ => t.Start("print", "1000")).ToList();
            foreach (var job in jobs)
            {
                var status = await job.Completion.WaitAsync(Ct);
                Assert.Equal(0, status.ExitCode);
                Assert.Equal(1000, status.LogBytes);
                t.Runner.Remove(job);
            }
        }

        // A per-job leak would show 200 new fds; the runtime and test framework may open one or two of their own.
        // The supervisors started ahead hold the same number of fds as before, not the same ones: count them.
        await t.WaitForSupervisorPoolAsync(Ct);
        var fdsAfter = DescribeFds();
        var added = fdsAfter.Except(fdsBefore).Where(fd => !fd.EndsWith(".dll", StringComparison.Ordinal)).ToList();
        Assert.True(fdsAfter.Count - fdsBefore.Count <= 2, $"{fdsBefore.Count} fds before, {fdsAfter.Count} after; new: {string.Join(", ", added)}");
        Assert.InRange(Threads(), 0, threadsBefore + 4); // thread-pool growth only, never per job
        Assert.Empty(t.GroupsLeft());
        Assert.Empty(t.JobDirectories());
    }

    [Fact(Timeout = 120_000)]
    public async Task Start_100Concurrent_AllStartRunAndEnd()
    {
        await using var t = TestRunner.Create();
        using var gate = new ManualResetEventSlim(false);

        var starts = Enumerable.Range(0, 100).Select(_ => Task.Run(
            () =>
            {
                gate.Wait(Ct);
                return t.Start("echo", "ok", "sleep", "0.2");
            },
            Ct)).ToList();
        gate.Set();
        var jobs = await Task.WhenAll(starts);
        var statuses = await Task.WhenAll(jobs.Select(j => j.Completion.WaitAsync(Ct)));

        Assert.Equal(100, jobs.Select(j => j.Pid).Distinct().Count());
        Assert.All(statuses, s => Assert.Equal(0, s.ExitCode));
        Assert.All(jobs, j => Assert.Equal("ok\n", t.Output(j)));
        Assert.Empty(t.GroupsLeft());
    }

    [Fact(Timeout = 120_000)]
    public async Task Start_ManyRunningJobs_ThreadCountDoesNotGrowPerJob()
    {
        await using var t = TestRunner.Create();
        await t.Runner.Start(new JobSpec("/bin/true")).Completion.WaitAsync(Ct);
        var threadsBefore = Threads();

        var jobs = Enumerable.Range(0, 150).Select(_ => t.Start("sleep", "30")).ToList();
        var threadsWhileRunning = Threads();
        foreach (var job in jobs)
        {
            _ = job.StopAsync(TimeSpan.Zero, Ct);
        }

        await Task.WhenAll(jobs.Select(j => j.Completion.WaitAsync(Ct)));

        Assert.InRange(threadsWhileRunning, 0, threadsBefore + 4);
        Assert.All(jobs, j => Assert.Equal(JobState.Stopped, j.Status.State));
    }
}
