using System.Globalization;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Identity;

/// <summary>
/// Two owners on one runner: what bob's job can do to alice's, asserted from inside bob's job (a shell script that
/// runs the test process's <c>probe</c>: kill -0, /proc/PID/environ, /proc/PID/fd/1, ptrace, kill -9).
/// </summary>
public sealed class TenantTests
{
    private const string Denied = "kill0=EPERM environ=EACCES fd1=EACCES ptrace=EPERM kill9=EPERM";

    // In a PID namespace of its own with a fresh /proc, bob's job cannot even name alice's processes.
    private const string Invisible = "kill0=ESRCH environ=ENOENT fd1=ENOENT ptrace=ESRCH kill9=ESRCH";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<JobIsolation, string> Isolations => new()
    {
        { JobIsolation.None, Denied },
        { JobIsolation.Mount, Denied },
        { JobIsolation.Pid | JobIsolation.Mount, Invisible },
    };

    [Theory(Timeout = 60_000)]
    [MemberData(nameof(Isolations))]
    public async Task BobsJob_ProbesAlicesJob_EveryAttemptRefusedAndAliceUnharmed(JobIsolation isolation, string expected)
    {
        await using var t = TestRunner.CreatePerOwner();
        var alice = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["echo", "alice-ready", "sleep", "60", "echo", "alice-done"])
        {
            Owner = "alice",
            Isolation = isolation,
            Environment = new Dictionary<string, string> { ["ALICE_SECRET"] = "s3cret" },
        });
        await t.WaitForOutputAsync(alice, "alice-ready", Ct);
        var target = MainProcess(alice, isolation);
        var supervisor = int.Parse(File.ReadAllText(Path.Combine(Path.GetDirectoryName(alice.CgroupPath)!, "shim", "cgroup.procs")).Trim(), CultureInfo.InvariantCulture);
        var script = $"{TestRunner.TestProcess} probe {target}; {TestRunner.TestProcess} probe {supervisor}";
        if (isolation.HasFlag(JobIsolation.Pid))
        {
            script += $"; {TestRunner.TestProcess} probe {alice.Pid}"; // alice's jobworker-init (root)
        }

        var bob = t.Runner.Start(new JobSpec("/bin/sh", ["-c", script]) { Owner = "bob", Isolation = isolation });
        var bobStatus = await bob.Completion.WaitAsync(Ct);

        // The supervisor and init run as root: refused, or invisible in a PID namespace, whatever the identity.
        var lines = t.Output(bob).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(JobState.Exited, bobStatus.State);
        Assert.All(lines, line => Assert.Equal(expected, line));
        Assert.Equal(isolation.HasFlag(JobIsolation.Pid) ? 3 : 2, lines.Length);

        // Alice's job is untouched: still running, its output exactly what it printed, and it ends as stopped.
        Assert.False(alice.HasEnded);
        Assert.True(TestRunner.ProcessExists(target));
        var aliceStatus = await alice.StopAsync(TimeSpan.FromSeconds(5), Ct);
        Assert.Equal((JobState.Stopped, 15), (aliceStatus.State, aliceStatus.Signal));
        Assert.Equal("alice-ready\n", t.Output(alice));
    }

    [Fact(Timeout = 60_000)]
    public async Task TwoJobsOfOneOwner_CanSignalEachOther()
    {
        await using var t = TestRunner.CreatePerOwner();
        var first = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["echo", "ready", "sleep", "60"]) { Owner = "alice", Isolation = JobIsolation.None });
        await t.WaitForOutputAsync(first, "ready", Ct);

        var second = t.Runner.Start(new JobSpec("/bin/sh", ["-c", $"kill -0 {first.Pid} && kill -TERM {first.Pid}; echo rc=$?"]) { Owner = "alice", Isolation = JobIsolation.None });
        await second.Completion.WaitAsync(Ct);
        var firstStatus = await first.Completion.WaitAsync(Ct);

        Assert.Equal("rc=0\n", t.Output(second));
        Assert.Equal((JobState.Signaled, 15), (firstStatus.State, firstStatus.Signal));
    }

    /// <summary>The job's program: with a PID namespace the job's pid is its init's, and the program the init's child.</summary>
    private static int MainProcess(Job job, JobIsolation isolation)
    {
        if (!isolation.HasFlag(JobIsolation.Pid))
        {
            return job.Pid;
        }

        var children = File.ReadAllText($"/proc/{job.Pid}/task/{job.Pid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return int.Parse(Assert.Single(children), CultureInfo.InvariantCulture);
    }
}
