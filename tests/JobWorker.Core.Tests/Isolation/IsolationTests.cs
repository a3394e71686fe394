using System.Globalization;
using System.Net;
using System.Net.Sockets;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Isolation;

/// <summary>Real PID, mount and network namespaces (the tests run as root, like the server).</summary>
public sealed class IsolationTests
{
    private const JobIsolation PidMount = JobIsolation.Pid | JobIsolation.Mount;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static JobSpec Shell(string script, JobIsolation isolation) => new("/bin/sh", ["-c", script]) { Isolation = isolation };

    private static async Task<string> RunAsync(TestRunner t, JobSpec spec)
    {
        var job = t.Runner.Start(spec);
        var status = await job.Completion.WaitAsync(Ct);
        Assert.False(Directory.Exists(job.CgroupPath));
        return t.Output(job) + $"[{status.State} {status.ExitCode} {status.Signal}]";
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_NoIsolationInSpec_RunnerDefaultAppliedAndRecordedInJobSpec()
    {
        await using var t = TestRunner.Create(o => o with { DefaultIsolation = JobIsolation.Pid });

        var job = t.Runner.Start(new JobSpec("/bin/sh", ["-c", "echo pid=$$"]));
        await job.Completion.WaitAsync(Ct);

        Assert.Equal(JobIsolation.Pid, job.Spec.Isolation);
        Assert.Equal("pid=2\n", t.Output(job));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_PidIsolated_RunsAsChildOfInitWithPid2()
    {
        await using var t = TestRunner.Create();

        var output = await RunAsync(t, Shell("echo pid=$$ ppid=$PPID", PidMount));

        Assert.Equal("pid=2 ppid=1\n[Exited 0 ]", output);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_PidIsolated_CannotSignalHostProcessOfSameUser()
    {
        await using var t = TestRunner.Create();
        // A host process of the job's own user (nobody): signalling it is allowed unless it is invisible.
        var victim = t.Start("echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(victim, "ready", Ct);
        var probe = $"kill -0 {victim.Pid} 2>&1; echo rc=$?";

        var isolated = await RunAsync(t, Shell(probe, PidMount));
        var shared = await RunAsync(t, Shell(probe, JobIsolation.None));

        Assert.Contains("No such process", isolated, StringComparison.Ordinal);
        Assert.Contains("rc=1", isolated, StringComparison.Ordinal);
        Assert.Equal("rc=0\n[Exited 0 ]", shared);
        Assert.True(TestRunner.ProcessExists(victim.Pid));
        await victim.StopAsync(TimeSpan.Zero, Ct);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_PidAndMountIsolated_ProcShowsOnlyTheJobsProcesses()
    {
        await using var t = TestRunner.Create();
        // Shell built-ins only, so the listing is exactly the init (1) and the shell (2).
        const string List = "for p in /proc/[0-9]*; do echo ${p#/proc/}; done";

        var isolated = await RunAsync(t, Shell(List, PidMount));
        var shared = await RunAsync(t, Shell(List, JobIsolation.None));

        Assert.Equal("1\n2\n[Exited 0 ]", isolated);
        Assert.True(shared.Split('\n').Length > 10, shared);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_MountIsolated_StateDirectoryAndOtherJobsLogsAreHidden()
    {
        // A state directory outside /tmp (the private /tmp alone would hide one below it) that the job's user may
        // list, with another job's log opened up to everyone, so only the mount namespace can be what hides it.
        var logs = Path.Combine("/var/tmp", "jobworker-iso-logs-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(logs);
        File.SetUnixFileMode(logs, (UnixFileMode)0b111_101_101);
        try
        {
            await using var t = TestRunner.Create(o => o with { StateDirectory = logs });
            var other = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["echo", "secret"]));
            await other.Completion.WaitAsync(Ct);
            var log = t.LogPath(other);
            File.SetUnixFileMode(Path.Combine(logs, "jobs"), (UnixFileMode)0b111_101_101);
            File.SetUnixFileMode(t.JobDirectory(other.Id), (UnixFileMode)0b111_101_101);
            File.SetUnixFileMode(log, (UnixFileMode)0b110_100_100);
            var probe = $"ls -A {logs}/jobs; cat {log} 2>&1; echo rc=$?";

            var isolated = t.Runner.Start(Shell(probe, JobIsolation.Mount));
            await isolated.Completion.WaitAsync(Ct);
            var shared = t.Runner.Start(Shell(probe, JobIsolation.None));
            await shared.Completion.WaitAsync(Ct);

            var isolatedOutput = t.Output(isolated);
            var sharedOutput = t.Output(shared);
            Assert.DoesNotContain("secret", isolatedOutput, StringComparison.Ordinal);
            Assert.Contains("No such file or directory", isolatedOutput, StringComparison.Ordinal);
            Assert.EndsWith("rc=1\n", isolatedOutput, StringComparison.Ordinal);
            Assert.Contains($"{other.Id:N}", sharedOutput, StringComparison.Ordinal);
            Assert.Contains("secret", sharedOutput, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(logs))
            {
                Directory.Delete(logs, recursive: true);
            }
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_MountIsolated_TmpIsEmptyAndPrivate()
    {
        await using var t = TestRunner.Create();
        var hostFile = Path.Combine("/tmp", "jobworker-iso-host-" + Guid.NewGuid().ToString("N"));
        var jobFile = Path.Combine("/tmp", "jobworker-iso-job-" + Guid.NewGuid().ToString("N"));
        await File.WriteAllTextAsync(hostFile, "host", Ct);
        try
        {
            var first = await RunAsync(t, Shell($"ls -A /tmp; echo private > {jobFile}; cat {jobFile}", JobIsolation.Mount));
            var second = await RunAsync(t, Shell($"ls -A /tmp", JobIsolation.Mount));

            Assert.Equal("private\n[Exited 0 ]", first);
            Assert.Equal("[Exited 0 ]", second);
            Assert.False(File.Exists(jobFile));
        }
        finally
        {
            File.Delete(hostFile);
            File.Delete(jobFile);
        }
    }

    [Theory(Timeout = 30_000)]
    [InlineData(JobIsolation.Network, false)]
    [InlineData(JobIsolation.All, false)]
    [InlineData(JobIsolation.None, true)]
    public async Task Start_Network_ConnectToHostLoopback_OnlyWithoutIsolation(JobIsolation isolation, bool reachable)
    {
        await using var t = TestRunner.Create();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var accept = listener.AcceptSocketAsync(Ct).AsTask();

        var output = await RunAsync(t, new JobSpec("/bin/bash", ["-c", $"if exec 3<>/dev/tcp/127.0.0.1/{port}; then echo connected; else echo refused; fi 2>/dev/null"]) { Isolation = isolation });

        Assert.Equal((reachable ? "connected" : "refused") + "\n[Exited 0 ]", output);
        if (reachable)
        {
            // The job connected, so the accept completes (its continuation may still be on its way).
            using var accepted = await accept.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        }
        else
        {
            Assert.False(accept.IsCompleted);
        }
    }

    [Theory(Timeout = 30_000)]
    [InlineData(JobIsolation.Network, false)]
    [InlineData(JobIsolation.None, true)]
    public async Task Start_Network_JobListener_ReachableFromHostOnlyWithoutIsolation(JobIsolation isolation, bool reachable)
    {
        await using var t = TestRunner.Create();
        var port = FreePort();
        // The job listens, proves its own loopback works by connecting to itself, then waits for the host.
        const string Listen = """
            use IO::Socket::INET; $| = 1;
            my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $ARGV[0], Listen => 5, ReuseAddr => 1) or die "listen: $!";
            my $self = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ARGV[0]) or die "self: $!";
            $l->accept or die "accept: $!";
            print "listening\n";
            sleep 60;
            """;
        var job = t.Runner.Start(new JobSpec("/usr/bin/perl", ["-e", Listen, port.ToString(CultureInfo.InvariantCulture)]) { Isolation = isolation });
        await t.WaitForOutputAsync(job, "listening", Ct);

        bool connected;
        using (var client = new TcpClient())
        {
            try
            {
                await client.ConnectAsync(IPAddress.Loopback, port, Ct);
                connected = true;
            }
            catch (SocketException)
            {
                connected = false;
            }
        }

        await job.StopAsync(TimeSpan.Zero, Ct);
        Assert.Equal(reachable, connected);
    }

    [Fact(Timeout = 30_000)]
    public async Task Stop_IsolatedJobIgnoresSigterm_KilledAfterGraceNothingRemains()
    {
        await using var t = TestRunner.Create();
        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["ignore-sigterm", "fork", "3", "echo", "ready", "sleep", "60"]) { Isolation = JobIsolation.All });
        await t.WaitForOutputAsync(job, "ready", Ct);
        var pids = await File.ReadAllLinesAsync(Path.Combine(job.CgroupPath, "cgroup.procs"), Ct);
        Assert.Equal(5, pids.Length); // init, target, 3 children

        var status = await job.StopAsync(TimeSpan.FromMilliseconds(500), Ct);

        Assert.Equal(JobState.Stopped, status.State);
        Assert.Equal(9, status.Signal);
        Assert.False(Directory.Exists(job.CgroupPath));
        Assert.All(pids, p => Assert.False(TestRunner.ProcessExists(int.Parse(p, CultureInfo.InvariantCulture))));
    }

    [Fact(Timeout = 30_000)]
    public async Task Stop_IsolatedJobWhoseChildrenIgnoreSigterm_MainStoppedBySigtermNothingRemains()
    {
        await using var t = TestRunner.Create();
        var script = $"(trap '' TERM; exec {TestRunner.TestProcess} fork 2 sleep 60) & sleep 0.2; echo ready; wait";
        var job = t.Runner.Start(Shell(script, JobIsolation.All));
        await t.WaitForOutputAsync(job, "ready", Ct);
        var pids = await File.ReadAllLinesAsync(Path.Combine(job.CgroupPath, "cgroup.procs"), Ct);
        Assert.True(pids.Length >= 5, string.Join(",", pids)); // init, sh, testprocess, 2 children

        var status = await job.StopAsync(TimeSpan.FromSeconds(10), Ct);

        Assert.Equal(JobState.Stopped, status.State);
        Assert.Equal(15, status.Signal);
        Assert.False(Directory.Exists(job.CgroupPath));
        Assert.All(pids, p => Assert.False(TestRunner.ProcessExists(int.Parse(p, CultureInfo.InvariantCulture))));
    }

    [Theory(Timeout = 30_000)]
    [InlineData(JobIsolation.None)]
    [InlineData(JobIsolation.All)]
    public async Task Stop_TargetHandlesSigterm_ReceivesItExactlyOnce(JobIsolation isolation)
    {
        await using var t = TestRunner.Create();
        // The init must not forward the stop's SIGTERM on top of the one the stop sends the target itself: a
        // program that treats a second SIGTERM as "force quit" would behave differently under isolation.
        var job = t.Runner.Start(Shell("exec 2>/dev/null; trap 'n=$((n+1)); echo term$n' TERM; echo ready; while :; do sleep 0.05; done", isolation));
        await t.WaitForOutputAsync(job, "ready", Ct);

        var status = await job.StopAsync(TimeSpan.FromMilliseconds(800), Ct);

        Assert.Equal(JobState.Stopped, status.State);
        Assert.Equal(9, status.Signal);
        Assert.Equal("ready\nterm1\n", t.Output(job));
    }

    [Theory(Timeout = 30_000)]
    [InlineData("exit 0", JobState.Exited, 0, null)]
    [InlineData("exit 3", JobState.Exited, 3, null)]
    [InlineData("exit 255", JobState.Exited, 255, null)]
    [InlineData("kill -KILL $$", JobState.Signaled, null, 9)]
    [InlineData("kill -SEGV $$", JobState.Signaled, null, 11)]
    [InlineData("kill -TERM $$", JobState.Signaled, null, 15)]
    public async Task Completion_StatusWithAndWithoutPidNamespace_Identical(string script, JobState state, int? exitCode, int? signal)
    {
        await using var t = TestRunner.Create();
        var results = new List<JobStatus>();
        foreach (var isolation in new[] { JobIsolation.None, JobIsolation.Pid, PidMount, JobIsolation.All })
        {
            var job = t.Runner.Start(Shell(script, isolation));
            results.Add(await job.Completion.WaitAsync(Ct));
        }

        Assert.All(results, s =>
        {
            Assert.Equal(state, s.State);
            Assert.Equal(exitCode, s.ExitCode);
            Assert.Equal(signal, s.Signal);
        });
    }

    [Theory(Timeout = 30_000)]
    [InlineData(JobIsolation.All)]
    [InlineData(JobIsolation.Mount)]
    public async Task Start_IsolatedMissingExecutable_ThrowsLikeWithoutIsolation(JobIsolation isolation)
    {
        await using var t = TestRunner.Create();

        var ex = Assert.Throws<JobStartException>(() => t.Runner.Start(new JobSpec("/no/such/program") { Isolation = isolation }));
        var dir = Assert.Throws<JobStartException>(() => t.Runner.Start(new JobSpec("/bin/true") { Isolation = isolation, WorkingDirectory = "/no/such/dir" }));

        Assert.Equal(JobStartFailure.ExecutableNotFound, ex.Reason);
        Assert.Equal(JobStartFailure.BadWorkingDirectory, dir.Reason);
        Assert.Empty(t.Runner.Jobs);
        Assert.Empty(Directory.GetDirectories(t.Runner.CgroupRoot));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_IsolatedJob_RunsAsJobUserWithNoNewPrivileges()
    {
        await using var t = TestRunner.Create();

        var output = await RunAsync(t, new JobSpec(TestRunner.TestProcess, ["ids"]) { Isolation = JobIsolation.All });

        Assert.Equal("uid=65534 gid=65534 groups=0\n[Exited 0 ]", output);
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
