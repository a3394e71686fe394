using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

public sealed class JobLifecycleTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory(Timeout = 30_000)]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(255)]
    public async Task Start_ProgramExits_ReportsExitCode(int code)
    {
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "hello", "exit", code.ToString(System.Globalization.CultureInfo.InvariantCulture));

        var status = await job.Completion.WaitAsync(Ct);

        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal(code, status.ExitCode);
        Assert.Null(status.Signal);
        Assert.True(status.HasEnded);
        Assert.Equal("hello\n", t.Output(job));
        Assert.Equal(6, status.LogBytes);
        Assert.False(Directory.Exists(job.CgroupPath));
    }

    [Theory(Timeout = 30_000)]
    [InlineData(9)]
    [InlineData(15)]
    [InlineData(11)]
    public async Task Start_ProgramKilledBySignal_ReportsSignaled(int signal)
    {
        await using var t = TestRunner.Create();
        var job = t.Start("signal", signal.ToString(System.Globalization.CultureInfo.InvariantCulture));

        var status = await job.Completion.WaitAsync(Ct);

        Assert.Equal(JobState.Signaled, status.State);
        Assert.Equal(signal, status.Signal);
        Assert.Null(status.ExitCode);
        Assert.False(status.OomKilled);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_StdoutAndStderr_InterleavedInOneLog()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "out1", "print", "0", "stderr", "3", "echo", "out2");

        var status = await job.Completion.WaitAsync(Ct);

        Assert.Equal("out1\nabcout2\n", t.Output(job));
        Assert.Equal(13, status.LogBytes);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_LargeOutput_AllBytesDrained()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("print", "5000000");

        var status = await job.Completion.WaitAsync(Ct);

        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal(5_000_000, status.LogBytes);
        Assert.Equal(5_000_000, new FileInfo(t.LogPath(job)).Length);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_DefaultUser_RunsAsNobodyWithoutSupplementaryGroups()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("ids");

        await job.Completion.WaitAsync(Ct);

        // nobody/nogroup on Debian; getgroups() returns 0 entries after setgroups(0, NULL).
        Assert.Equal("uid=65534 gid=65534 groups=0\n", t.Output(job));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_NumericUserAndGroup_RunsWithThoseIds()
    {
        await using var t = TestRunner.Create(o => o with { User = "4321", Group = "1234" });
        var job = t.Start("ids");

        await job.Completion.WaitAsync(Ct);

        Assert.Equal("uid=4321 gid=1234 groups=0\n", t.Output(job));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_UnknownUser_ThrowsUserNotFound()
    {
        await using var t = TestRunner.Create(o => o with { User = "no-such-user-jw" });

        var ex = Assert.Throws<JobStartException>(() => t.Start("exit", "0"));

        Assert.Equal(JobStartFailure.UserNotFound, ex.Reason);
        Assert.Contains("no-such-user-jw", ex.Message, StringComparison.Ordinal);
        Assert.Empty(t.GroupsLeft());
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_Job_SigpipeHasDefaultDisposition()
    {
        await using var t = TestRunner.Create();

        // .NET ignores SIGPIPE and Process.Start children inherit that; ours must not. With the default
        // disposition `yes` dies silently of SIGPIPE once `head` exits; ignored, it would print
        // "yes: standard output: Broken pipe" and exit 1.
        var pipeline = t.Runner.Start(new JobSpec("/bin/sh", ["-c", "yes | head -1"]));
        var probe = t.Start("sigpipe");

        var status = await pipeline.Completion.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        await probe.Completion.WaitAsync(Ct);

        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal(0, status.ExitCode);
        Assert.Equal("y\n", t.Output(pipeline));
        Assert.Equal("sigpipe=default\n", t.Output(probe));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_Environment_MinimalDefaultsPlusSpec()
    {
        Environment.SetEnvironmentVariable("JOBWORKER_TEST_SERVER_SECRET", "s3cret");
        await using var t = TestRunner.Create();
        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["env", "PATH", "env", "HOME", "env", "LANG", "env", "GREETING", "env", "JOBWORKER_TEST_SERVER_SECRET"])
        {
            Environment = new Dictionary<string, string> { ["GREETING"] = "hi there", ["LANG"] = "en_US.UTF-8" },
        });

        await job.Completion.WaitAsync(Ct);

        Assert.Equal(
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nHOME=/nonexistent\nLANG=en_US.UTF-8\nGREETING=hi there\nJOBWORKER_TEST_SERVER_SECRET unset\n",
            t.Output(job));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_BareCommandName_FoundInPath()
    {
        await using var t = TestRunner.Create();
        var job = t.Runner.Start(new JobSpec("sh", ["-c", "echo found"]));

        var status = await job.Completion.WaitAsync(Ct);

        Assert.Equal(0, status.ExitCode);
        Assert.Equal("found\n", t.Output(job));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_WorkingDirectory_UsedByJob()
    {
        await using var t = TestRunner.Create();
        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["cwd"]) { WorkingDirectory = "/tmp" });
        var defaultCwd = t.Start("cwd");

        await job.Completion.WaitAsync(Ct);
        await defaultCwd.Completion.WaitAsync(Ct);

        Assert.Equal("cwd=/tmp\n", t.Output(job));
        Assert.Equal("cwd=/\n", t.Output(defaultCwd));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_Job_RunsInItsOwnCgroupFromTheStart()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("cgroup");

        await job.Completion.WaitAsync(Ct);

        // Printed by the program's first instructions: CLONE_INTO_CGROUP placed it before exec.
        var relative = job.CgroupPath[TestRunner.CgroupMount.Length..];
        Assert.Equal($"cgroup={relative}\n", t.Output(job));
        Assert.False(Directory.Exists(job.CgroupPath));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_Job_InheritsNoServerFileDescriptors()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("fds");

        await job.Completion.WaitAsync(Ct);

        // stdin, stdout, stderr and nothing else.
        Assert.Equal("fds=3\n", t.Output(job));
    }

    [Fact(Timeout = 30_000)]
    public async Task Status_RunningJob_ReportsRunningWithUsageAndAbsentFiguresAsNull()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "ready", "sleep", "30");
        await t.WaitForOutputAsync(job, "ready", Ct);

        var status = job.Status;

        Assert.Equal(JobState.Running, status.State);
        Assert.False(status.HasEnded);
        // The pid is the job's process as the kernel sees it: in the job's cgroup.
        Assert.Contains(status.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllLines(Path.Combine(job.CgroupPath, "cgroup.procs")));
        Assert.Null(status.EndedAt);
        Assert.True(status.StartedAt <= DateTimeOffset.UtcNow);
        Assert.NotNull(status.Usage.CpuUsageMicroseconds); // cpu.stat exists even without the cpu controller
        Assert.Equal(6, status.LogBytes);
        if (!t.Runner.AvailableControllers.Contains("memory"))
        {
            Assert.Null(status.Usage.MemoryCurrentBytes);
            Assert.Null(status.Usage.OomKills);
        }

        if (!t.Runner.AvailableControllers.Contains("pids"))
        {
            Assert.Null(status.Usage.PidsCurrent);
        }

        await job.StopAsync(TimeSpan.Zero, Ct);
    }

    [Fact(Timeout = 30_000)]
    public async Task Completion_EndedJob_HasTimestampsAndFinalUsage()
    {
        await using var t = TestRunner.Create();
        var before = DateTimeOffset.UtcNow;
        var job = t.Start("cpu", "0.2");

        var status = await job.Completion.WaitAsync(Ct);

        Assert.InRange(status.StartedAt, before, status.EndedAt!.Value);
        Assert.True(status.EndedAt - status.StartedAt >= TimeSpan.FromMilliseconds(150));
        Assert.True(status.Usage.CpuUsageMicroseconds >= 200_000, $"cpu usage {status.Usage.CpuUsageMicroseconds} us");
        Assert.Same(status, job.Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_MainExitsLeavingChildren_ChildrenKilledAndJobEnds()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("fork", "3", "detach", "exit", "0");

        var status = await job.Completion.WaitAsync(Ct);

        Assert.Equal(JobState.Exited, status.State);
        var grandchild = int.Parse(t.Output(job).Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.False(TestRunner.ProcessExists(grandchild));
        Assert.False(Directory.Exists(job.CgroupPath));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_MainClosesOutputEarly_JobStillEndsAtExit()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "bye", "close-output", "sleep", "0.2", "exit", "4");

        var status = await job.Completion.WaitAsync(Ct);

        Assert.Equal(4, status.ExitCode);
        Assert.Equal("bye\n", t.Output(job));
    }

    [Fact(Timeout = 30_000)]
    public async Task Remove_RunningJob_Throws_EndedJob_ForgetsAndDeletesLog()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "x", "sleep", "30");
        var logPath = t.LogPath(job);

        Assert.Throws<InvalidOperationException>(() => t.Runner.Remove(job));
        Assert.True(t.Runner.TryGetJob(job.Id, out var found));
        Assert.Same(job, found);
        Assert.Contains(job, t.Runner.Jobs);

        await job.StopAsync(TimeSpan.Zero, Ct);
        t.Runner.Remove(job);

        Assert.False(t.Runner.TryGetJob(job.Id, out _));
        Assert.False(File.Exists(logPath));
    }

    [Fact(Timeout = 30_000)]
    public async Task Create_StateDirectory_CreatedPrivate()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("exit", "0");
        await job.Completion.WaitAsync(Ct);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(t.StateDirectory));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(t.LogPath(job)));
    }
}
