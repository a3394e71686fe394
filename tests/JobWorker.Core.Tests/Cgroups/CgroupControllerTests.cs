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

    /// <summary>The .NET job (tests/JobWorker.MemoryHog), built next to the tests.</summary>
    private static string MemoryHog { get; } = Path.Combine(AppContext.BaseDirectory, "JobWorker.MemoryHog");

    /// <summary>The .NET installation running the tests (jobs get a minimal environment, so the apphost is told).</summary>
    private static string DotnetRoot { get; } = Path.GetFullPath(Path.Combine(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));

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
        // The group got up to its limit before the kill (the allocator touches 1 MiB at a time).
        Assert.InRange(status.Usage.MemoryPeakBytes ?? 0, 48L << 20, (64L << 20) + (1 << 20));
        Assert.DoesNotContain("allocated", t.Output(job), StringComparison.Ordinal);
        TestContext.Current.TestOutputHelper?.WriteLine($"memory.peak {status.Usage.MemoryPeakBytes}, oom_kill {status.Usage.OomKills}");

        // The runner is unharmed: the OOM killer stayed inside the job's group, and the next job runs normally.
        var next = t.Start("echo", "after-oom", "exit", "0");
        var nextStatus = await next.Completion.WaitAsync(Ct);
        Assert.Equal(JobState.Exited, nextStatus.State);
        Assert.Equal(0, nextStatus.ExitCode);
        Assert.False(nextStatus.OomKilled);
        Assert.Equal("after-oom\n", t.Output(next));
    }

    /// <summary>
    /// A .NET job over memory.max. By default the GC's heap hard limit is 75% of the cgroup's memory.max, so the
    /// runtime fails first: a managed OutOfMemoryException, "Out of memory.", SIGABRT, and no kernel OOM kill.
    /// With the heap limit raised above memory.max (DOTNET_GCHeapHardLimit), the kernel's OOM killer acts first.
    /// Either way the status must say what happened, consistently with memory.events.
    /// </summary>
    /// <remarks>Two facts, not a theory: tests/vm/run-controller-tests.sh compares the guest's test count with the host's listing, which counts a theory once.</remarks>
    [Fact(Timeout = 90_000)]
    public Task MemoryLimit_DotNetJobExceedsIt_ManagedOutOfMemoryReportedAsAbort() => DotNetJobExceedsMemoryLimitAsync(gcHeapLimitAboveMemoryMax: false);

    /// <inheritdoc cref="MemoryLimit_DotNetJobExceedsIt_ManagedOutOfMemoryReportedAsAbort"/>
    [Fact(Timeout = 90_000)]
    public Task MemoryLimit_DotNetJobWithGcLimitAboveIt_KernelOomKillReported() => DotNetJobExceedsMemoryLimitAsync(gcHeapLimitAboveMemoryMax: true);

    private static async Task DotNetJobExceedsMemoryLimitAsync(bool gcHeapLimitAboveMemoryMax)
    {
        await using var t = TestRunner.Create();
        RequireControllers(t, "memory");
        const long limit = 128L << 20;
        var environment = new Dictionary<string, string> { ["DOTNET_ROOT"] = DotnetRoot };
        if (gcHeapLimitAboveMemoryMax)
        {
            environment["DOTNET_GCHeapHardLimit"] = "0x40000000"; // 1 GiB
        }

        var job = t.Runner.Start(new JobSpec(MemoryHog, ["300"]) { Limits = new() { MemoryBytes = limit }, Environment = environment });
        var status = await job.Completion.WaitAsync(Ct);

        var output = t.Output(job);
        var detail = $"state {status.State}, exit {status.ExitCode}, signal {status.Signal}, OomKilled {status.OomKilled}, oom_kill {status.Usage.OomKills}, memory.peak {status.Usage.MemoryPeakBytes}, output: {output}";
        TestContext.Current.TestOutputHelper?.WriteLine(detail);

        // The runtime started and the limit stopped the allocation, not the start-up.
        Assert.StartsWith("started\n", output, StringComparison.Ordinal);
        Assert.DoesNotContain("allocated", output, StringComparison.Ordinal);
        Assert.InRange(status.Usage.MemoryPeakBytes ?? 0, limit / 2, limit + (1 << 20));

        // The status agrees with memory.events, and the exit status (from waitid) agrees with both.
        Assert.Equal(status.Usage.OomKills > 0, status.OomKilled);
        if (status.OomKilled)
        {
            // The kernel's OOM killer ended the only process with SIGKILL.
            Assert.True(status.State == JobState.Signaled && status.Signal == 9, detail);
            Assert.DoesNotContain("Out of memory", output, StringComparison.Ordinal);
        }
        else
        {
            // Unhandled OutOfMemoryException: the runtime prints "Out of memory." and aborts (SIGABRT).
            Assert.Equal(0, status.Usage.OomKills);
            Assert.Contains("Out of memory", output, StringComparison.Ordinal);
            Assert.True(
                (status.State == JobState.Signaled && status.Signal == 6) || (status.State == JobState.Exited && status.ExitCode != 0),
                detail);
        }

        // Which of the two happens follows from the GC's heap limit (measured: always so in the guest, 24–128 MiB).
        Assert.True(status.OomKilled == gcHeapLimitAboveMemoryMax, detail);
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
        TestContext.Current.TestOutputHelper?.WriteLine($"cpu {used / wall:F3} cores over {wall / 1e6:F2} s, nr_throttled {status.Usage.CpuThrottledPeriods}, throttled_usec {status.Usage.CpuThrottledMicroseconds}");
        Assert.Equal(0, status.ExitCode);
        Assert.True(wall >= 3e6, $"wall {wall} us");
        Assert.True(used <= 0.3 * wall, $"used {used} us of CPU in {wall} us wall time (limit 0.2 cores)");
        // And it did run (a job that never got the CPU would pass the bound above).
        Assert.True(used >= 0.1 * wall, $"used {used} us of CPU in {wall} us wall time (limit 0.2 cores)");
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

    [Fact(Timeout = 60_000)]
    public async Task PidsLimit_ForkBombKeepsForking_ContainedAndStoppable()
    {
        await using var t = TestRunner.Create();
        RequireControllers(t, "pids");

        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["forkbomb-forever"]) { Limits = new() { MaxProcesses = 5 } });
        Assert.Equal("contained errno 11\n", await t.WaitForOutputAsync(job, "contained", Ct));

        // Every process keeps forking; the group stays at its limit. A few samples over ~0.5 s (test-only).
        var samples = new List<long>();
        for (var i = 0; i < 5; i++)
        {
            samples.Add(job.Status.Usage.PidsCurrent!.Value);
            await Task.Delay(100, Ct);
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"pids.current samples: {string.Join(", ", samples)}");
        Assert.All(samples, n => Assert.InRange(n, 2, 5));

        var status = await job.StopAsync(TimeSpan.FromSeconds(1), Ct);

        Assert.Equal(JobState.Stopped, status.State);
        Assert.True(status.EndedAt is not null);
        Assert.False(TestRunner.ProcessExists(job.Pid));
        Assert.False(Directory.Exists(job.CgroupPath));
        Assert.Empty(Directory.EnumerateDirectories(t.Runner.CgroupRoot));
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
        TestContext.Current.TestOutputHelper?.WriteLine(output);
        Assert.True(seconds >= 3.5, output);
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
        var device = Environment.GetEnvironmentVariable("JOBWORKER_TEST_SCRATCH_DEVICE");
        Assert.SkipWhen(device is null, "JOBWORKER_TEST_SCRATCH_DEVICE (a scratch block device that may be overwritten) is not set; tests/vm/run-controller-tests.sh sets it");

        // Arrange: this process in its own group, as systemd would start a Delegate=yes service.
        Directory.CreateDirectory(delegated);
        var pid = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        await File.WriteAllTextAsync(Path.Combine(delegated, "cgroup.procs"), pid, Ct);
        var logs = Path.Combine(Path.GetTempPath(), "jobworker-test-logs-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            // root: the io job writes the scratch device.
            var runner = JobRunner.Create(new JobRunnerOptions { UseDelegatedCgroup = true, StateDirectory = logs, User = "root", Group = "root" });
            string Output(Job job) => File.ReadAllText(Path.Combine(logs, $"{job.Id:N}.log"));
            try
            {
                Assert.Equal(delegated, runner.CgroupRoot);
                Assert.Equal(delegated[mount.Length..] + "/server", JobWorker.Core.Cgroups.CgroupMount.FindOwnCgroup());
                Assert.Superset(new HashSet<string> { "cpu", "memory", "io", "pids" }, runner.AvailableControllers.ToHashSet());

                // Every limit, enforced in sibling groups of the server's leaf, all at once.
                var oom = runner.Start(new JobSpec(TestRunner.TestProcess, ["alloc", "300"]) { Limits = new() { MemoryBytes = 64 << 20, CpuCores = 0.5, MaxProcesses = 10 } });
                var bomb = runner.Start(new JobSpec(TestRunner.TestProcess, ["forkbomb", "20", "exit", "0"]) { Limits = new() { MaxProcesses = 5 } });
                var busy = runner.Start(new JobSpec(TestRunner.TestProcess, ["busy", "2"]) { Limits = new() { CpuCores = 0.2 } });
                var write = runner.Start(new JobSpec(TestRunner.TestProcess, ["write-direct", device!, "4"])
                {
                    Limits = new() { Io = [new IoLimit(device!) { WriteBytesPerSecond = 2 << 20 }] },
                });
                foreach (var job in new[] { oom, bomb, busy, write })
                {
                    Assert.Equal(delegated, Path.GetDirectoryName(job.CgroupPath));
                }

                var oomStatus = await oom.Completion.WaitAsync(Ct);
                Assert.True(oomStatus.OomKilled, $"state {oomStatus.State}, signal {oomStatus.Signal}");
                Assert.Equal(9, oomStatus.Signal);
                Assert.InRange(oomStatus.Usage.MemoryPeakBytes ?? 0, 48L << 20, (64L << 20) + (1 << 20));

                var bombStatus = await bomb.Completion.WaitAsync(Ct);
                Assert.Equal(0, bombStatus.ExitCode);
                Assert.Equal("forked 4 failed 16 errno 11\n", Output(bomb));

                var busyStatus = await busy.Completion.WaitAsync(Ct);
                var wall = (busyStatus.EndedAt!.Value - busyStatus.StartedAt).TotalMicroseconds;
                Assert.True(busyStatus.Usage.CpuUsageMicroseconds <= 0.3 * wall, $"used {busyStatus.Usage.CpuUsageMicroseconds} us of CPU in {wall} us (limit 0.2 cores)");
                Assert.True(busyStatus.Usage.CpuThrottledPeriods > 0, $"nr_throttled {busyStatus.Usage.CpuThrottledPeriods}");

                // 4 MiB at 2 MiB/s: about 2 s.
                var writeStatus = await write.Completion.WaitAsync(Ct);
                Assert.Equal(0, writeStatus.ExitCode);
                var seconds = double.Parse(Output(write).Split(' ')[4], CultureInfo.InvariantCulture);
                Assert.True(seconds >= 1.5, Output(write));
                TestContext.Current.TestOutputHelper?.WriteLine(
                    $"delegated: memory.peak {oomStatus.Usage.MemoryPeakBytes}; {Output(bomb).TrimEnd()}; cpu {busyStatus.Usage.CpuUsageMicroseconds / wall:F3} cores, nr_throttled {busyStatus.Usage.CpuThrottledPeriods}; {Output(write).TrimEnd()}");
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
