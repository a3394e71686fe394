using System.Security.Cryptography;
using JobWorker.Core.Jobs;
using JobWorker.Core.Output;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

/// <summary>
/// Jobs outlive their runner: a runner is disposed (what a server's exit does to it) and a new one is created on the
/// same state directory and cgroup root, with real supervisors, real jobs and real signals in between.
/// </summary>
public sealed class JobRestartTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 60_000)]
    public async Task Restart_RunningJob_ReattachedFollowedToTheEndWithEveryByte()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "first", "sleep", "2", "print", "300000", "exit", "4");
        var id = job.Id;
        var startedAt = job.Status.StartedAt;
        await t.WaitForOutputAsync(job, "first", Ct);

        await t.RestartAsync();

        Assert.True(t.Runner.TryGetJob(id, out var again));
        Assert.Equal(JobState.Running, again.Status.State);
        Assert.Equal(job.Pid, again.Status.Pid);
        Assert.Equal(startedAt, again.Status.StartedAt);
        var output = await ReadAsync(again, new OutputReadOptions { Follow = true });
        var status = await again.Completion.WaitAsync(Ct);

        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal(4, status.ExitCode);
        Assert.Equal(Sha256([.. "first\n"u8, .. TestProcessPrint(300_000)]), Sha256(output));
        Assert.Equal(output.Length, status.LogBytes);
    }

    [Fact(Timeout = 60_000)]
    public async Task Restart_FollowerResumesFromItsOffset_NoGapNoDuplicate()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("print", "100000", "sleep", "2", "print", "100000");
        await t.WaitForOutputAsync(job, "\n", Ct);
        var before = await ReadAsync(job, OutputReadOptions.Default);

        await t.RestartAsync();

        Assert.True(t.Runner.TryGetJob(job.Id, out var again));
        var after = await ReadAsync(again, new OutputReadOptions { Follow = true, FromOffset = before.Length });
        Assert.Equal(Sha256([.. TestProcessPrint(100_000), .. TestProcessPrint(100_000)]), Sha256([.. before, .. after]));
    }

    [Fact(Timeout = 60_000)]
    public async Task Restart_JobExitedWhileNoRunner_RealExitCodeAndEndTime()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "bye", "sleep", "0.3", "exit", "9");
        await t.Runner.DisposeAsync();
        await t.WaitForSupervisorEndAsync(job.Id, Ct);
        var endedBefore = DateTimeOffset.UtcNow;
        await Task.Delay(300, Ct);

        await t.RestartAsync();

        Assert.True(t.Runner.TryGetJob(job.Id, out var again));
        var status = await again.Completion.WaitAsync(Ct);
        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal(9, status.ExitCode);
        Assert.True(status.EndedAt <= endedBefore, $"ended {status.EndedAt:O}, the restart was after {endedBefore:O}");
        Assert.True(status.EndedAt > status.StartedAt);
        Assert.Equal("bye\n", t.Output(again));
        Assert.False(Directory.Exists(Path.GetDirectoryName(job.CgroupPath)));
        Assert.Empty(t.GroupsLeft());
    }

    [Fact(Timeout = 60_000)]
    public async Task Restart_JobSignaledWhileNoRunner_ReportsTheSignal()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("sleep", "30");
        await t.Runner.DisposeAsync();
        Assert.Equal(0, Interop.Sys.Kill(job.Pid, 10)); // SIGUSR1: the test started this job
        await t.WaitForSupervisorEndAsync(job.Id, Ct);

        await t.RestartAsync();

        Assert.True(t.Runner.TryGetJob(job.Id, out var again));
        var status = await again.Completion.WaitAsync(Ct);
        Assert.Equal(JobState.Signaled, status.State);
        Assert.Equal(10, status.Signal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Restart_StopRecordedBeforeRestart_ReportedStoppedAndKilledAtTheDeadline()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("ignore-sigterm", "echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(job, "ready", Ct);
        _ = job.StopAsync(TimeSpan.FromSeconds(1), Ct);

        await t.RestartAsync();

        Assert.True(t.Runner.TryGetJob(job.Id, out var again));
        var status = await again.Completion.WaitAsync(TimeSpan.FromSeconds(20), Ct);
        Assert.Equal(JobState.Stopped, status.State);
        Assert.Equal(9, status.Signal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Restart_StopOfReattachedJob_EndsItAndNothingRemains()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("fork", "2", "echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(job, "ready", Ct);
        var cgroup = job.CgroupPath;

        await t.RestartAsync();
        Assert.True(t.Runner.TryGetJob(job.Id, out var again));
        var status = await again.StopAsync(TimeSpan.FromSeconds(5), Ct);

        Assert.Equal(JobState.Stopped, status.State);
        Assert.False(Directory.Exists(cgroup));
        Assert.False(TestRunner.ProcessExists(job.Pid));
    }

    [Fact(Timeout = 60_000)]
    public async Task Restart_EndedJob_ListedWithOwnerSpecStatusAndLogUntilRemoved()
    {
        await using var t = TestRunner.Create();
        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["echo", "kept", "exit", "3"]) { Owner = "alice", Environment = new Dictionary<string, string> { ["A"] = "1" } });
        var final = await job.Completion.WaitAsync(Ct);

        await t.RestartAsync();

        Assert.True(t.Runner.TryGetJob(job.Id, out var again));
        Assert.Equal(final, again.Status);
        Assert.Equal("alice", again.Spec.Owner);
        Assert.Equal(job.Spec.Arguments, again.Spec.Arguments);
        Assert.Equal("1", again.Spec.Environment["A"]);
        Assert.Equal("kept\n", System.Text.Encoding.ASCII.GetString(await ReadAsync(again, new OutputReadOptions { Follow = true })));

        t.Runner.Remove(again);
        await t.RestartAsync();
        Assert.False(t.Runner.TryGetJob(job.Id, out _));
        Assert.False(Directory.Exists(t.JobDirectory(job.Id)));
    }

    [Fact(Timeout = 60_000)]
    public async Task Restart_EndedJobWhoseGroupsWereLeft_GroupsRemovedStatusKept()
    {
        // A server that recorded a job's end and stopped before removing its groups: the job's groups are its own
        // to remove at the next start (this test creates them again under its own cgroup root to stand for that).
        await using var t = TestRunner.Create();
        var job = t.Start("exit", "6");
        var final = await job.Completion.WaitAsync(Ct);
        await t.Runner.DisposeAsync();
        var group = Path.GetDirectoryName(job.CgroupPath)!;
        Directory.CreateDirectory(Path.Combine(group, "job"));
        Directory.CreateDirectory(Path.Combine(group, "shim"));

        await t.RestartAsync();

        Assert.False(Directory.Exists(group));
        Assert.Empty(t.GroupsLeft()); // its user's group went with it
        Assert.True(t.Runner.TryGetJob(job.Id, out var again));
        Assert.Equal(final, again.Status);
    }

    [Fact(Timeout = 60_000)]
    public async Task Supervisor_KilledWhileJobRuns_JobReportedKilledAndNothingRemains()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("fork", "2", "echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(job, "ready", Ct);
        var shim = int.Parse(File.ReadAllText(Path.Combine(Path.GetDirectoryName(job.CgroupPath)!, "shim", "cgroup.procs")).Trim(), System.Globalization.CultureInfo.InvariantCulture);

        Assert.Equal(0, Interop.Sys.Kill(shim, 9)); // the supervisor of a job this test started

        var status = await job.Completion.WaitAsync(Ct);
        Assert.Equal(JobState.Signaled, status.State);
        Assert.Equal(9, status.Signal);
        Assert.False(TestRunner.ProcessExists(job.Pid));
        Assert.False(Directory.Exists(job.CgroupPath));
    }

    [Fact(Timeout = 30_000)]
    public async Task Supervisor_IgnoresTerminationSignals()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(job, "ready", Ct);
        var shim = int.Parse(File.ReadAllText(Path.Combine(Path.GetDirectoryName(job.CgroupPath)!, "shim", "cgroup.procs")).Trim(), System.Globalization.CultureInfo.InvariantCulture);

        foreach (var signal in new[] { 1, 2, 15 })
        {
            Assert.Equal(0, Interop.Sys.Kill(shim, signal));
        }

        await Task.Delay(200, Ct);
        Assert.True(TestRunner.ProcessExists(shim));
        Assert.Equal(JobState.Running, job.Status.State);
    }

    [Theory(Timeout = 30_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Supervisor_CommandLineAndEnvironment_HoldNothingOfTheJob(bool startedAhead)
    {
        // /proc/<pid>/cmdline of a root process is readable by every user: the job's environment must not be there.
        await using var t = TestRunner.Create(o => o with { SupervisorPoolSize = startedAhead ? 1 : 0 });
        if (startedAhead)
        {
            await t.WaitForSupervisorPoolAsync(Ct);
        }

        const string Secret = "s3cr3t-token-value";
        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["echo", "ready", "sleep", "60"]) { Environment = new Dictionary<string, string> { ["API_TOKEN"] = Secret } });
        await t.WaitForOutputAsync(job, "ready", Ct);
        var shim = int.Parse(File.ReadAllText(Path.Combine(Path.GetDirectoryName(job.CgroupPath)!, "shim", "cgroup.procs")).Trim(), System.Globalization.CultureInfo.InvariantCulture);

        var cmdline = File.ReadAllText($"/proc/{shim}/cmdline");
        var environ = File.ReadAllText($"/proc/{shim}/environ");

        Assert.StartsWith(startedAhead ? "jobworker-shim\0pool\0" : "jobworker-shim\02\0", cmdline, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, cmdline, StringComparison.Ordinal);
        Assert.DoesNotContain("API_TOKEN", cmdline, StringComparison.Ordinal);
        Assert.Equal(string.Empty, environ);
        Assert.Contains(Secret, File.ReadAllText($"/proc/{job.Pid}/environ"), StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task Create_SecondRunnerOnSameStateDirectory_RefusedNamingTheHolder()
    {
        await using var t = TestRunner.Create();

        var error = Assert.Throws<JobWorkerException>(() => JobRunner.Create(t.Runner.Options with { CgroupRoot = t.Runner.CgroupRoot + "-other" }));

        Assert.Contains(t.StateDirectory, error.Message, StringComparison.Ordinal);
        Assert.Contains($"pid {Environment.ProcessId}", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(t.Runner.CgroupRoot + "-other"));
    }

    [Fact(Timeout = 30_000)]
    public async Task Create_SecondRunnerOnSameCgroupRoot_RefusedNamingTheHolder()
    {
        await using var t = TestRunner.Create();
        var otherState = Path.Combine(Path.GetTempPath(), "jobworker-test-state-" + Guid.NewGuid().ToString("N")[..12]);

        var error = Assert.Throws<JobWorkerException>(() => JobRunner.Create(t.Runner.Options with { StateDirectory = otherState }));

        Assert.Contains(t.Runner.CgroupRoot, error.Message, StringComparison.Ordinal);
        Assert.Contains($"pid {Environment.ProcessId}", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(otherState));
    }

    private static async Task<byte[]> ReadAsync(Job job, OutputReadOptions options)
    {
        using var buffer = new MemoryStream();
        await foreach (var chunk in job.ReadOutputAsync(options, Ct))
        {
            buffer.Write(chunk.Data.Span);
        }

        return buffer.ToArray();
    }

    private static string Sha256(byte[] data) => Convert.ToHexString(SHA256.HashData(data));

    private static byte[] TestProcessPrint(int count)
    {
        var bytes = new byte[count];
        for (int i = 0; i < count; i++)
        {
            int j = i % 65536;
            bytes[i] = j % 64 == 63 ? (byte)'\n' : (byte)('a' + (j % 26));
        }

        return bytes;
    }
}
