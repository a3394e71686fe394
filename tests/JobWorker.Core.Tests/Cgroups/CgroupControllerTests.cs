using System.Diagnostics;
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

    /// <summary>
    /// Snapshots of one file of a running job's cgroup, read by the test every 50 ms until the job ends, each with the
    /// time since the job was started on the test's own clock (<paramref name="clock"/>).
    /// </summary>
    private static async Task<List<(double Seconds, string Text)>> SampleUntilEndAsync(Job job, string file, Stopwatch clock)
    {
        var samples = new List<(double Seconds, string Text)>();
        var path = Path.Combine(job.CgroupPath, file);
        while (!job.Completion.IsCompleted)
        {
            string text;
            try
            {
                text = await File.ReadAllTextAsync(path, Ct);
            }
            catch (IOException)
            {
                break; // the group went with the job
            }

            samples.Add((clock.Elapsed.TotalSeconds, text));
            await Task.Delay(50, Ct);
        }

        return samples;
    }

    /// <summary>A "key value" line of a cgroup file (cpu.stat, memory.events).</summary>
    private static long Keyed(string text, string key)
    {
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ');
            if (parts.Length == 2 && parts[0] == key)
            {
                return long.Parse(parts[1], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"{key} not found in: {text}");
    }

    /// <summary>wbytes of io.stat ("MAJ:MIN rbytes=.. wbytes=.. ..." per device), summed over devices.</summary>
    private static long WrittenBytes(string ioStat) => ioStat
        .Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries)
        .Where(field => field.StartsWith("wbytes=", StringComparison.Ordinal))
        .Sum(field => long.Parse(field.AsSpan(7), CultureInfo.InvariantCulture));

    /// <summary>
    /// CPU cores used (and periods throttled) between the first and the last cpu.stat sample taken in
    /// [<paramref name="from"/>, <paramref name="to"/>] seconds after the start: the job's steady state, without
    /// its spawn and exit.
    /// </summary>
    private static (double Cores, long Throttled, double Seconds) CpuOverWindow(List<(double Seconds, string Text)> samples, double from, double to)
    {
        var window = samples.Where(s => s.Seconds >= from && s.Seconds <= to).ToList();
        Assert.True(window.Count >= 2, $"fewer than 2 cpu.stat samples in [{from}, {to}] s (of {samples.Count}, last at {samples.LastOrDefault().Seconds:F2} s)");
        var (first, last) = (window[0], window[^1]);
        var seconds = last.Seconds - first.Seconds;
        var used = Keyed(last.Text, "usage_usec") - Keyed(first.Text, "usage_usec");
        var throttled = Keyed(last.Text, "nr_throttled") - Keyed(first.Text, "nr_throttled");
        return (used / 1e6 / seconds, throttled, seconds);
    }

    /// <summary>
    /// Write rate between the first and the last io.stat sample taken while the write was under way (some bytes
    /// written, not yet all of <paramref name="total"/>).
    /// </summary>
    private static (double BytesPerSecond, double Seconds) WriteRateWhileWriting(List<(double Seconds, string Text)> samples, long total)
    {
        var writing = samples.Select(s => (s.Seconds, Bytes: WrittenBytes(s.Text))).Where(s => s.Bytes > 0 && s.Bytes < total).ToList();
        Assert.True(writing.Count >= 2, $"fewer than 2 io.stat samples while the write was under way (of {samples.Count})");
        var seconds = writing[^1].Seconds - writing[0].Seconds;
        Assert.True(seconds >= 1, $"the write was sampled over only {seconds:F2} s");
        return ((writing[^1].Bytes - writing[0].Bytes) / seconds, seconds);
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
    /// A job OOM-killed while no runner runs (the server is down): the runner that comes back reports the kill from
    /// the job's memory.events, with the exit status its supervisor recorded and the real end time.
    /// </summary>
    [Fact(Timeout = 60_000)]
    public async Task MemoryLimit_OomKilledWhileNoRunner_ReportedAfterTheRestart()
    {
        await using var t = TestRunner.Create();
        RequireControllers(t, "memory");
        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["sleep", "0.5", "alloc", "300", "exit", "0"]) { Limits = new() { MemoryBytes = 64 << 20 } });
        await t.Runner.DisposeAsync();
        await t.WaitForSupervisorEndAsync(job.Id, Ct);

        var restartedAt = DateTimeOffset.UtcNow;
        await t.RestartAsync();

        Assert.True(t.Runner.TryGetJob(job.Id, out var again));
        var status = await again.Completion.WaitAsync(Ct);
        Assert.True(status.OomKilled, $"state {status.State}, exit {status.ExitCode}, signal {status.Signal}, oom_kill {status.Usage.OomKills}");
        Assert.Equal(JobState.Signaled, status.State);
        Assert.Equal(9, status.Signal);
        Assert.True(status.EndedAt < restartedAt, $"ended {status.EndedAt:O}, restarted {restartedAt:O}");
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

        // Which of the two happens follows from the GC's heap limit (measured: always so in the guest, 24–128 MiB).
        if (gcHeapLimitAboveMemoryMax)
        {
            // The kernel's OOM killer ended the only process with SIGKILL (memory.events oom_kill, waitid's signal).
            Assert.True(status.Usage.OomKills >= 1, detail);
            Assert.True(status.OomKilled, detail);
            Assert.True(status.State == JobState.Signaled && status.Signal == 9, detail);
            Assert.DoesNotContain("Out of memory", output, StringComparison.Ordinal);
        }
        else
        {
            // Unhandled OutOfMemoryException: the runtime prints "Out of memory." and aborts (SIGABRT); the kernel
            // killed nothing.
            Assert.Equal(0, status.Usage.OomKills);
            Assert.False(status.OomKilled, detail);
            Assert.Contains("Out of memory", output, StringComparison.Ordinal);
            Assert.True(
                (status.State == JobState.Signaled && status.Signal == 6) || (status.State == JobState.Exited && status.ExitCode != 0),
                detail);
        }
    }

    /// <summary>
    /// The same allocator under the same memory.max, once below the limit and once above it, and once above it
    /// without a limit: only the one above the limit is killed, so the limit (not the guest's memory) decides.
    /// </summary>
    [Fact(Timeout = 60_000)]
    public async Task MemoryLimit_AllocatorWithinIt_RunsWhileTheSameAboveItIsKilled()
    {
        await using var t = TestRunner.Create();
        RequireControllers(t, "memory");
        const long limit = 64L << 20;

        var within = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["alloc", "16", "echo", "ready", "sleep", "30"]) { Limits = new() { MemoryBytes = limit } });
        Assert.Equal("allocated 16 MiB\nready\n", await t.WaitForOutputAsync(within, "ready", Ct));
        // Read by the test from the job's own group: the limit is in place and the 16 MiB are charged to it.
        var memoryMax = File.ReadAllText(Path.Combine(within.CgroupPath, "memory.max")).Trim();
        var memoryCurrent = long.Parse(File.ReadAllText(Path.Combine(within.CgroupPath, "memory.current")).Trim(), CultureInfo.InvariantCulture);
        var oomKillsWhileRunning = Keyed(File.ReadAllText(Path.Combine(within.CgroupPath, "memory.events")), "oom_kill");
        var withinStatus = await within.StopAsync(TimeSpan.FromSeconds(5), Ct);

        var above = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["alloc", "96", "exit", "0"]) { Limits = new() { MemoryBytes = limit } });
        var aboveStatus = await above.Completion.WaitAsync(Ct);

        var unlimited = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["alloc", "96", "exit", "0"]));
        var unlimitedStatus = await unlimited.Completion.WaitAsync(Ct);

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"within: memory.max {memoryMax}, memory.current {memoryCurrent}; above: {aboveStatus.State} signal {aboveStatus.Signal}, memory.peak {aboveStatus.Usage.MemoryPeakBytes}; unlimited: {unlimitedStatus.State} exit {unlimitedStatus.ExitCode}");
        Assert.Equal("67108864", memoryMax);
        Assert.InRange(memoryCurrent, 16L << 20, limit);
        Assert.Equal(0, oomKillsWhileRunning);
        Assert.Equal(JobState.Stopped, withinStatus.State);
        Assert.Equal(15, withinStatus.Signal);

        Assert.Equal(JobState.Signaled, aboveStatus.State);
        Assert.Equal(9, aboveStatus.Signal);
        Assert.True(aboveStatus.Usage.OomKills >= 1, $"oom_kill {aboveStatus.Usage.OomKills}");
        Assert.InRange(aboveStatus.Usage.MemoryPeakBytes ?? 0, 48L << 20, limit + (1 << 20));
        Assert.DoesNotContain("allocated", t.Output(above), StringComparison.Ordinal);

        Assert.Equal(JobState.Exited, unlimitedStatus.State);
        Assert.Equal(0, unlimitedStatus.ExitCode);
        Assert.Equal("allocated 96 MiB\n", t.Output(unlimited));
    }

    /// <summary>
    /// cpu.max 0.2: the busy loop's CPU use, from cpu.stat samples the test takes over its steady state (0.5–3.5 s of
    /// 4 s), is 0.2 cores ±25 %, with throttled periods.
    /// </summary>
    [Fact(Timeout = 60_000)]
    public async Task CpuLimit_BusyLoop_ThrottledToFraction()
    {
        await using var t = TestRunner.Create();
        RequireControllers(t, "cpu");
        const double cores = 0.2;

        var clock = Stopwatch.StartNew();
        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["busy", "4"]) { Limits = new() { CpuCores = cores } });
        var samples = await SampleUntilEndAsync(job, "cpu.stat", clock);
        var status = await job.Completion.WaitAsync(Ct);

        var window = CpuOverWindow(samples, 0.5, 3.5);
        var wall = (status.EndedAt!.Value - status.StartedAt).TotalMicroseconds;
        var used = status.Usage.CpuUsageMicroseconds!.Value;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"window: {window.Cores:F3} cores over {window.Seconds:F2} s, nr_throttled +{window.Throttled}; whole job: {used / wall:F3} cores over {wall / 1e6:F2} s, nr_throttled {status.Usage.CpuThrottledPeriods}, throttled_usec {status.Usage.CpuThrottledMicroseconds}");
        Assert.Equal(0, status.ExitCode);
        Assert.InRange(window.Cores, 0.75 * cores, 1.25 * cores);
        Assert.True(window.Throttled > 0, $"nr_throttled grew by {window.Throttled} in {window.Seconds:F2} s");
        // The whole life as the engine reports it agrees (spawn and exit are a few ms of 4 s).
        Assert.InRange(used / wall, 0.75 * cores, 1.25 * cores);
        Assert.True(status.Usage.CpuThrottledPeriods > 0, $"nr_throttled {status.Usage.CpuThrottledPeriods}");
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
    public async Task PidsLimit_OneWithPidNamespace_JobRunsAndItsOwnLimitHolds()
    {
        // The namespace init is PID 1 for the job's whole life and is not counted against MaxProcesses: a limit of 1
        // starts the program (which, counting the init, could never be forked) and still stops its first fork.
        await using var t = TestRunner.Create();
        RequireControllers(t, "pids");

        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["forkbomb", "3", "exit", "0"])
        {
            Limits = new() { MaxProcesses = 1 },
            Isolation = JobIsolation.Pid,
        });
        var status = await job.Completion.WaitAsync(Ct);

        Assert.Equal("forked 0 failed 3 errno 11\n", t.Output(job));
        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal(1, job.Spec.Limits.MaxProcesses);
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
        Assert.Empty(t.GroupsLeft());
    }

    /// <summary>
    /// io.max wbps 2 MiB/s on the scratch disk: the same 16 MiB O_DIRECT write without a limit (the control) and with
    /// it, in the same run. The limited rate comes from io.stat samples the test takes while the write is under way;
    /// the job's wall time on the test's clock (spawn and exit included, as for the control) bounds it from above and
    /// compares it with the control. 16 MiB, not less: on a loaded host spawn and exit took up to 0.7 s, which the
    /// control's wall time must not be dominated by.
    /// </summary>
    [Fact(Timeout = 90_000)]
    public async Task IoLimit_DirectWrite_ThrottledToBytesPerSecond()
    {
        var device = Environment.GetEnvironmentVariable("JOBWORKER_TEST_SCRATCH_DEVICE");
        await using var t = TestRunner.Create(o => o with { User = "root", Group = "root" });
        RequireControllers(t, "io");
        Assert.SkipWhen(device is null, "JOBWORKER_TEST_SCRATCH_DEVICE (a scratch block device that may be overwritten) is not set; tests/vm/run-controller-tests.sh sets it");
        const long total = 16L << 20;
        const double limit = 2 << 20;

        var control = await TimedWriteAsync(t.Runner, device!, total, ResourceLimits.None);
        var limited = await TimedWriteAsync(t.Runner, device!, total, new() { Io = [new IoLimit(device!) { WriteBytesPerSecond = (long)limit }] });

        var sampled = WriteRateWhileWriting(limited.Samples, total);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"unlimited: {total / control.Seconds / (1 << 20):F2} MiB/s over its wall time ({control.Seconds:F2} s); limited to 2 MiB/s: {sampled.BytesPerSecond / (1 << 20):F2} MiB/s sampled over {sampled.Seconds:F2} s, {total / limited.Seconds / (1 << 20):F2} MiB/s over its wall time ({limited.Seconds:F2} s)");
        Assert.InRange(sampled.BytesPerSecond, 0.75 * limit, 1.25 * limit);
        Assert.True(total / limited.Seconds <= 1.25 * limit, $"16 MiB in {limited.Seconds:F2} s is faster than the limit allows");
        Assert.True(limited.Seconds >= 4 * control.Seconds, $"limited, the write took {limited.Seconds:F2} s, unlimited {control.Seconds:F2} s: not well below the control");
    }

    /// <summary>
    /// Writes <paramref name="total"/> bytes with O_DIRECT as a job, sampling its io.stat; returns the samples and the
    /// wall time from just before the start to the completion, both on the test's clock.
    /// </summary>
    private static async Task<(List<(double Seconds, string Text)> Samples, double Seconds)> TimedWriteAsync(JobRunner runner, string device, long total, ResourceLimits limits)
    {
        var clock = Stopwatch.StartNew();
        var job = runner.Start(new JobSpec(TestRunner.TestProcess, ["write-direct", device, (total >> 20).ToString(CultureInfo.InvariantCulture)]) { Limits = limits });
        var samples = await SampleUntilEndAsync(job, "io.stat", clock);
        var status = await job.Completion.WaitAsync(Ct);
        var seconds = clock.Elapsed.TotalSeconds;

        Assert.True(status.State == JobState.Exited && status.ExitCode == 0, $"write job: {status.State}, exit {status.ExitCode}, signal {status.Signal}");
        Assert.InRange(status.Usage.IoWriteBytes ?? 0, total, total + (1 << 20));
        return (samples, seconds);
    }

    [Fact(Timeout = 60_000)]
    public async Task UserGroup_WithAProcessLimit_GetsNoStartMadeReady()
    {
        // An idle supervisor made ready in mallory's group would take one of her processes: she gets none; alice does.
        TestRunner? created = null;
        try
        {
            created = TestRunner.Create(o => o with
            {
                UserLimitsByUser = new Dictionary<string, UserCgroupLimits> { ["mallory"] = new() { MaxProcesses = 8 } },
            });
        }
        catch (CgroupControllerUnavailableException e)
        {
            Assert.Skip($"cgroup v2 controller(s) not available here (hybrid/v1 host); run tests/vm/run-controller-tests.sh ({e.Message})");
        }

        await using var t = created;
        RequireControllers(t, "pids");
        var mallory = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["exit", "0"]) { Owner = "mallory" });
        await mallory.Completion.WaitAsync(Ct);
        var alice = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["exit", "0"]) { Owner = "alice" });
        await alice.Completion.WaitAsync(Ct);
        for (var i = 0; i < 500 && t.Runner.StartsAheadCount == 0; i++)
        {
            await Task.Delay(10, Ct);
        }

        Assert.Equal(1, t.Runner.StartsAheadCount);
        Assert.True(Directory.Exists(Path.Combine(t.Runner.CgroupRoot, "users", "alice")), "alice has no start made ready");
        Assert.False(Directory.Exists(Path.Combine(t.Runner.CgroupRoot, "users", "mallory")), "mallory's group holds something after her last job");
    }

    [Fact(Timeout = 90_000)]
    public async Task UserGroup_MemoryHogAndForkBomb_StayInTheirUsersGroupWhileAnotherUserRunsAtFullSpeed()
    {
        // mallory's jobs set no limits of their own: only her user group's aggregate bounds them.
        const long UserMemory = 64 << 20;
        const long UserProcesses = 16;
        TestRunner? created = null;
        try
        {
            created = TestRunner.Create(o => o with
            {
                UserLimitsByUser = new Dictionary<string, UserCgroupLimits> { ["mallory"] = new() { MemoryBytes = UserMemory, MaxProcesses = UserProcesses, CpuCores = 0.1 } },
            });
        }
        catch (CgroupControllerUnavailableException e)
        {
            // A user group's limits are checked when the runner is created: without the controllers there is none.
            Assert.Skip($"cgroup v2 controller(s) not available here (hybrid/v1 host); run tests/vm/run-controller-tests.sh ({e.Message})");
        }

        await using var t = created;
        RequireControllers(t, "cpu", "memory", "pids");
        Job Start(string owner, params string[] args) => t.Runner.Start(new JobSpec(TestRunner.TestProcess, args) { Owner = owner });

        // The control: alice's busy loop alone, measured the same way (the test and the runner share the CPU too).
        var clock = Stopwatch.StartNew();
        var alone = Start("alice", "busy", "3");
        var aloneCpu = CpuOverWindow(await SampleUntilEndAsync(alone, "cpu.stat", clock), 0.5, 2.5);

        // Runs until stopped: while it does, none of mallory's processes ends, so the bomb holds every slot she has.
        var burner = Start("mallory", "busy", "60");
        var hog = Start("mallory", "alloc", "300");
        var bomb = Start("mallory", "forkbomb-forever");
        var mallory = Path.GetDirectoryName(Path.GetDirectoryName(hog.CgroupPath))!;
        Assert.Equal(Path.Combine(t.Runner.CgroupRoot, "users", "mallory"), mallory);

        // The memory hog is killed inside mallory's group, at her aggregate, though it has no limit of its own.
        var hogStatus = await hog.Completion.WaitAsync(Ct);
        Assert.Equal(9, hogStatus.Signal);
        Assert.True(hogStatus.OomKilled, $"state {hogStatus.State}, signal {hogStatus.Signal}");
        Assert.InRange(hogStatus.Usage.MemoryPeakBytes ?? 0, 32L << 20, UserMemory);

        // The fork bomb forks forever and is held at mallory's process count.
        Assert.Equal("contained errno 11\n", await t.WaitForOutputAsync(bomb, "contained", Ct));
        var pidsCurrent = long.Parse(File.ReadAllText(Path.Combine(mallory, "pids.current")).Trim(), CultureInfo.InvariantCulture);
        Assert.InRange(pidsCurrent, UserProcesses - 5, UserProcesses);
        // Only her group limits them (kernels before 6.12 count pids.events in the forking group, so not read here).
        Assert.Equal("max", File.ReadAllText(Path.Combine(bomb.CgroupPath, "pids.max")).Trim());
        Assert.Equal("max", File.ReadAllText(Path.Combine(bomb.CgroupPath, "memory.max")).Trim());
        Assert.True(Keyed(File.ReadAllText(Path.Combine(mallory, "memory.events")), "oom_kill") >= 1);

        // mallory cannot start another job while her bomb holds her processes. The bomb's count moves (the OOM killer
        // takes some, the rest fork again within a millisecond), so a start can slip into a slot freed that moment:
        // of ten tries, at least one must be refused, naming the limit; one that ran did so inside her group.
        JobStartException? refused = null;
        for (var attempt = 0; attempt < 10 && refused is null; attempt++)
        {
            try
            {
                var slipped = Start("mallory", "exit", "0");
                Assert.StartsWith(mallory + "/", slipped.CgroupPath, StringComparison.Ordinal);
                await slipped.Completion.WaitAsync(Ct);
                await Task.Delay(100, Ct);
            }
            catch (JobStartException e)
            {
                refused = e;
            }
        }

        Assert.NotNull(refused);
        Assert.Equal(11, refused.Errno);
        Assert.StartsWith("The job's process could not be created: Resource temporarily unavailable (EAGAIN). The job's user has reached the process limit of its cgroup", refused.Message, StringComparison.Ordinal);

        // ... while alice starts another job (its supervisor and process are hers, not mallory's to count) ...
        var other = Start("alice", "echo", "started", "exit", "0");
        Assert.Equal(0, (await other.Completion.WaitAsync(Ct)).ExitCode);
        Assert.Equal("started\n", t.Output(other));

        // ... and, while mallory's bomb holds her processes and her burner spins, alice's busy loop runs at the speed it
        // has alone, less at most the tenth of a core mallory may use. The guest shares its host: a slice the host takes
        // from one window is no doing of mallory's, so up to five windows are measured, each alongside mallory's whole
        // group, and the best counts. Without her group's CPU limit alice gets at most half the CPU in every window.
        var best = default((double Cores, long Throttled, double Seconds));
        const int Windows = 5;
        for (var window = 0; window < Windows && best.Cores < 0.8 * aloneCpu.Cores; window++)
        {
            clock.Restart();
            var victim = Start("alice", "busy", "3");
            var malloryBefore = (Seconds: clock.Elapsed.TotalSeconds, Usage: Keyed(File.ReadAllText(Path.Combine(mallory, "cpu.stat")), "usage_usec"));
            var victimCpu = CpuOverWindow(await SampleUntilEndAsync(victim, "cpu.stat", clock), 0.5, 2.5);
            var malloryAfter = (Seconds: clock.Elapsed.TotalSeconds, Usage: Keyed(File.ReadAllText(Path.Combine(mallory, "cpu.stat")), "usage_usec"));
            var victimStatus = await victim.Completion.WaitAsync(Ct);
            Assert.Equal(0, victimStatus.ExitCode);
            Assert.False(victimStatus.OomKilled);
            var malloryCores = (malloryAfter.Usage - malloryBefore.Usage) / 1e6 / (malloryAfter.Seconds - malloryBefore.Seconds);
            TestContext.Current.TestOutputHelper?.WriteLine(
                $"user group, window {window + 1}: alice {victimCpu.Cores:F3} cores (alone {aloneCpu.Cores:F3}) over {victimCpu.Seconds:F2} s, mallory's group {malloryCores:F3} cores");
            Assert.InRange(malloryCores, 0, 0.125);
            best = victimCpu.Cores > best.Cores ? victimCpu : best;
        }

        await burner.StopAsync(TimeSpan.Zero, Ct);
        var burnerStatus = await burner.Completion.WaitAsync(Ct);
        var burnerCores = burnerStatus.Usage.CpuUsageMicroseconds!.Value / (burnerStatus.EndedAt!.Value - burnerStatus.StartedAt).TotalMicroseconds;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"user group: hog memory.peak {hogStatus.Usage.MemoryPeakBytes}; pids.current {pidsCurrent}/{UserProcesses}; alice at best {best.Cores:F3} cores (alone {aloneCpu.Cores:F3}), mallory's burner {burnerCores:F3} cores; {Environment.ProcessorCount} CPU(s)");
        Assert.InRange(burnerCores, 0, 0.125);
        Assert.True(best.Cores >= 0.8 * aloneCpu.Cores, $"alice's job got at best {best.Cores:F3} cores in {Windows} windows, {aloneCpu.Cores:F3} alone");

        await bomb.StopAsync(TimeSpan.Zero, Ct);
        Assert.False(Directory.Exists(mallory));
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
            var runner = JobRunner.Create(new JobRunnerOptions { UseDelegatedCgroup = true, StateDirectory = logs, Identity = TestRunner.SharedAccount, User = "root", Group = "root", ServerMemoryMinBytes = 32 << 20, ServerMemoryLowBytes = 64 << 20 });
            string Output(Job job) => File.ReadAllText(Path.Combine(logs, "jobs", job.Id.ToString("N"), "output.log"));
            try
            {
                Assert.Equal(delegated, runner.CgroupRoot);
                Assert.Equal(delegated[mount.Length..] + "/server", JobWorker.Core.Cgroups.CgroupMount.FindOwnCgroup());
                Assert.Superset(new HashSet<string> { "cpu", "memory", "io", "pids" }, runner.AvailableControllers.ToHashSet());
                // The server's leaf is protected from reclaim for the jobs.
                Assert.Equal("33554432", File.ReadAllText(Path.Combine(delegated, "server", "memory.min")).Trim());
                Assert.Equal("67108864", File.ReadAllText(Path.Combine(delegated, "server", "memory.low")).Trim());

                // Every limit, enforced in sibling groups of the server's leaf, all at once.
                // Every limit, enforced in sibling groups of the server's leaf, all at once.
                var clock = Stopwatch.StartNew();
                var write = runner.Start(new JobSpec(TestRunner.TestProcess, ["write-direct", device!, "8"])
                {
                    Limits = new() { Io = [new IoLimit(device!) { WriteBytesPerSecond = 2 << 20 }] },
                });
                var busy = runner.Start(new JobSpec(TestRunner.TestProcess, ["busy", "4"]) { Limits = new() { CpuCores = 0.2 } });
                var ioSamples = SampleUntilEndAsync(write, "io.stat", clock);
                var cpuSamples = SampleUntilEndAsync(busy, "cpu.stat", clock);
                var oom = runner.Start(new JobSpec(TestRunner.TestProcess, ["alloc", "300"]) { Limits = new() { MemoryBytes = 64 << 20, CpuCores = 0.5, MaxProcesses = 10 } });
                var bomb = runner.Start(new JobSpec(TestRunner.TestProcess, ["forkbomb", "20", "exit", "0"]) { Limits = new() { MaxProcesses = 5 } });
                foreach (var job in new[] { oom, bomb, busy, write })
                {
                    // <delegated>/users/%/<id>/job (no owner): the users' groups are siblings of the server's leaf.
                    Assert.Equal(Path.Combine(delegated, "users", "%"), Path.GetDirectoryName(Path.GetDirectoryName(job.CgroupPath)));
                }

                var oomStatus = await oom.Completion.WaitAsync(Ct);
                Assert.True(oomStatus.OomKilled, $"state {oomStatus.State}, signal {oomStatus.Signal}");
                Assert.Equal(9, oomStatus.Signal);
                Assert.InRange(oomStatus.Usage.MemoryPeakBytes ?? 0, 48L << 20, (64L << 20) + (1 << 20));

                var bombStatus = await bomb.Completion.WaitAsync(Ct);
                Assert.Equal(0, bombStatus.ExitCode);
                Assert.Equal("forked 4 failed 16 errno 11\n", Output(bomb));

                // The busy loop and the writer, measured over their steady state from the test's own samples.
                var busyStatus = await busy.Completion.WaitAsync(Ct);
                var writeStatus = await write.Completion.WaitAsync(Ct);
                var cpu = CpuOverWindow(await cpuSamples, 0.5, 3.5);
                var io = WriteRateWhileWriting(await ioSamples, 8L << 20);
                TestContext.Current.TestOutputHelper?.WriteLine(
                    $"delegated: memory.peak {oomStatus.Usage.MemoryPeakBytes}; {Output(bomb).TrimEnd()}; cpu {cpu.Cores:F3} cores over {cpu.Seconds:F2} s, nr_throttled +{cpu.Throttled}; write {io.BytesPerSecond / (1 << 20):F2} MiB/s sampled over {io.Seconds:F2} s");
                Assert.Equal(0, busyStatus.ExitCode);
                Assert.InRange(cpu.Cores, 0.15, 0.25);
                Assert.True(cpu.Throttled > 0, $"nr_throttled grew by {cpu.Throttled} in {cpu.Seconds:F2} s");
                Assert.Equal(0, writeStatus.ExitCode);
                Assert.InRange(writeStatus.Usage.IoWriteBytes ?? 0, 8L << 20, 9L << 20);
                Assert.InRange(io.BytesPerSecond, 0.75 * (2 << 20), 1.25 * (2 << 20));
            }
            finally
            {
                await runner.StopAllAsync(TimeSpan.Zero, Ct);
                await runner.DisposeAsync();
            }

            Assert.Equal(["server"], Directory.EnumerateDirectories(delegated).Select(Path.GetFileName));
        }
        finally
        {
            await File.WriteAllTextAsync(Path.Combine(mount + original, "cgroup.procs"), pid, Ct);
            TestRunner.KillAndRemove(delegated);
            if (Directory.Exists(logs))
            {
                Directory.Delete(logs, recursive: true);
            }
        }
    }
}
