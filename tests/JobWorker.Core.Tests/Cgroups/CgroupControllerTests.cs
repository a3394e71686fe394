using System.Globalization;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Cgroups;

/// <summary>
/// Limits enforced by real cgroup v2 controllers. They skip on hosts without the controllers (cgroup v1/hybrid)
/// and run in the User-mode-Linux guest (tests/vm/run-controller-tests.sh), which has all of them.
/// </summary>
[Trait("Category", "CgroupControllers")]
[Collection("ResourceCounting")] // the delegated test moves this process between cgroups
public sealed class CgroupControllerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static void RequireControllers(TestRunner t, params string[] controllers)
    {
        var missing = controllers.Where(c => !t.Runner.AvailableControllers.Contains(c)).ToList();
        Assert.SkipWhen(missing.Count > 0, $"cgroup v2 controller(s) {string.Join(", ", missing)} not available here (hybrid/v1 host); run tests/vm/run-controller-tests.sh");
    }

    [Fact(Timeout = 60_000)]
    public async Task MemoryLimit_AllocatorExceedsIt_OomKilled()
    {
        await using var t = TestRunner.Create();
        RequireControllers(t, "memory");

        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["alloc", "300", "exit", "0"]) { Limits = new() { MemoryBytes = 64 << 20 } });
        var status = await job.Completion.WaitAsync(Ct);

        Assert.True(status.OomKilled, $"state {status.State}, exit {status.ExitCode}, signal {status.Signal}, output {t.Output(job)}");
        Assert.Equal(JobState.Signaled, status.State);
        Assert.Equal(9, status.Signal);
        Assert.True(status.Usage.OomKills >= 1);
        Assert.InRange(status.Usage.MemoryPeakBytes ?? 0, 1, (64 << 20) + (1 << 20));
        Assert.DoesNotContain("allocated", t.Output(job), StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task MemoryLimit_AllocatorWithinIt_RunsNormallyWithUsage()
    {
        await using var t = TestRunner.Create();
        RequireControllers(t, "memory");

        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["alloc", "16", "echo", "ready", "sleep", "30"]) { Limits = new() { MemoryBytes = 64 << 20 } });
        await t.WaitForOutputAsync(job, "ready", Ct);
        var running = job.Status;
        await job.StopAsync(TimeSpan.Zero, Ct);

        Assert.InRange(running.Usage.MemoryCurrentBytes ?? 0, 16 << 20, 64 << 20);
        Assert.Equal(0, running.Usage.OomKills);
        Assert.False(job.Status.OomKilled);
    }

    [Fact(Timeout = 60_000)]
    public async Task CpuLimit_BusyLoop_ThrottledToFraction()
    {
        await using var t = TestRunner.Create();
        RequireControllers(t, "cpu");

        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["busy", "3"]) { Limits = new() { CpuCores = 0.2 } });
        var status = await job.Completion.WaitAsync(Ct);

        var wall = (status.EndedAt!.Value - status.StartedAt).TotalMicroseconds;
        var used = status.Usage.CpuUsageMicroseconds!.Value;
        Assert.True(used <= 0.3 * wall, $"used {used} us of CPU in {wall} us wall time (limit 0.2 cores)");
        Assert.True(status.Usage.CpuThrottledPeriods > 0, $"nr_throttled {status.Usage.CpuThrottledPeriods}");
        Assert.True(status.Usage.CpuThrottledMicroseconds > 0);
    }

    [Fact(Timeout = 60_000)]
    public async Task PidsLimit_ForkBomb_Contained()
    {
        await using var t = TestRunner.Create();
        RequireControllers(t, "pids");

        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["forkbomb", "20", "exit", "0"]) { Limits = new() { MaxProcesses = 5 } });
        var status = await job.Completion.WaitAsync(Ct);

        // The main process is 1 of the 5: 4 forks succeed, 16 fail with EAGAIN (11).
        Assert.Equal("forked 4 failed 16 errno 11\n", t.Output(job));
        Assert.Equal(JobState.Exited, status.State);
        Assert.False(Directory.Exists(job.CgroupPath));
    }

    [Fact(Timeout = 90_000)]
    public async Task IoLimit_DirectWrite_ThrottledToBytesPerSecond()
    {
        var device = Environment.GetEnvironmentVariable("JOBWORKER_TEST_SCRATCH_DEVICE");
        await using var t = TestRunner.Create(o => o with { User = "root", Group = "root" });
        RequireControllers(t, "io");
        Assert.SkipWhen(device is null, "JOBWORKER_TEST_SCRATCH_DEVICE (a scratch block device that may be overwritten) is not set; tests/vm/run-controller-tests.sh sets it");

        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["write-direct", device!, "8"])
        {
            Limits = new() { Io = [new IoLimit(device!) { WriteBytesPerSecond = 2 << 20 }] },
        });
        var status = await job.Completion.WaitAsync(Ct);

        // 8 MiB at 2 MiB/s: about 4 s (unthrottled it takes a fraction of a second).
        var output = t.Output(job);
        Assert.Equal(0, status.ExitCode);
        var seconds = double.Parse(output.Split(' ')[4], CultureInfo.InvariantCulture);
        Assert.True(seconds >= 2.5, output);
        Assert.True(status.Usage.IoWriteBytes >= 8 << 20, $"io.stat wbytes {status.Usage.IoWriteBytes}");
    }

    [Fact(Timeout = 60_000)]
    public async Task DelegatedCgroup_ServerMovesToLeafAndJobsAreSiblings()
    {
        var mount = TestRunner.CgroupMount;
        var original = JobWorker.Core.Cgroups.CgroupMount.FindOwnCgroup()!;
        var delegated = Path.Combine(mount, "jobworker-test-delegated-" + Guid.NewGuid().ToString("N")[..8]);
        Assert.SkipUnless(
            new[] { "cpu", "memory", "io", "pids" }.All(File.ReadAllText(Path.Combine(mount, "cgroup.subtree_control")).Contains),
            "the cgroup2 root does not delegate cpu, memory, io and pids (hybrid/v1 host); run tests/vm/run-controller-tests.sh");

        // Arrange: this process in its own group, as systemd would start a Delegate=yes service.
        Directory.CreateDirectory(delegated);
        var pid = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        await File.WriteAllTextAsync(Path.Combine(delegated, "cgroup.procs"), pid, Ct);
        var logs = Path.Combine(Path.GetTempPath(), "jobworker-test-logs-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var runner = JobRunner.Create(new JobRunnerOptions { UseDelegatedCgroup = true, LogDirectory = logs });
            try
            {
                Assert.Equal(delegated, runner.CgroupRoot);
                Assert.Equal(delegated[mount.Length..] + "/server", JobWorker.Core.Cgroups.CgroupMount.FindOwnCgroup());
                Assert.Superset(new HashSet<string> { "cpu", "memory", "io", "pids" }, runner.AvailableControllers.ToHashSet());

                var job = runner.Start(new JobSpec(TestRunner.TestProcess, ["alloc", "300"]) { Limits = new() { MemoryBytes = 64 << 20, CpuCores = 0.5, MaxProcesses = 10 } });
                Assert.Equal(delegated, Path.GetDirectoryName(job.CgroupPath));
                var status = await job.Completion.WaitAsync(Ct);
                Assert.True(status.OomKilled);
            }
            finally
            {
                await runner.DisposeAsync();
            }

            Assert.Equal(["server"], Directory.EnumerateDirectories(delegated).Select(Path.GetFileName));
        }
        finally
        {
            await File.WriteAllTextAsync(Path.Combine(mount + original, "cgroup.procs"), pid, Ct);
            Directory.Delete(Path.Combine(delegated, "server"));
            Directory.Delete(delegated);
            Directory.Delete(logs, recursive: true);
        }
    }
}
