using System.Globalization;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

/// <summary>
/// Supervisors started ahead of their jobs (the runner's pool): real idle <c>jobworker-shim pool</c> processes, taken
/// by starts, killed from outside, and ended with the runner. Alone: some tests count this process's children.
/// </summary>
[Collection("ResourceCounting")]
public sealed class SupervisorPoolTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 30_000)]
    public async Task Start_FromThePool_CopyOfTheSupervisorRunsInTheJobsGroupAsOurChildAndPoolRefilled()
    {
        await using var t = TestRunner.Create(o => o with { SupervisorPoolSize = 1 });
        await t.WaitForSupervisorPoolAsync(Ct);
        var idle = Assert.Single(t.Runner.IdleSupervisorPids());

        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["env", "GREETING", "sleep", "30"]) { Environment = new Dictionary<string, string> { ["GREETING"] = "hello from the pool" } });
        await t.WaitForOutputAsync(job, "hello from the pool", Ct);

        // The pooled supervisor forked a copy of itself straight into the job's shim group (never migrated: see
        // SupervisorPool), a child of ours like a supervisor started directly, and the pooled one was reaped.
        var shimGroup = Path.Combine(Path.GetDirectoryName(job.CgroupPath)!, "shim");
        var supervisor = int.Parse(File.ReadAllText(Path.Combine(shimGroup, "cgroup.procs")).Trim(), CultureInfo.InvariantCulture);
        Assert.NotEqual(idle, supervisor);
        Assert.Equal(Environment.ProcessId, ParentOf(supervisor));
        Assert.Equal(supervisor, ParentOf(job.Pid));
        await WaitUntilAsync(() => !Directory.Exists($"/proc/{idle}"), $"the pooled supervisor {idle} is still there (not reaped?)");

        var status = await job.StopAsync(TimeSpan.FromSeconds(5), Ct);
        Assert.Equal(JobState.Stopped, status.State);
        await t.WaitForSupervisorPoolAsync(Ct);
        Assert.NotEqual(idle, Assert.Single(t.Runner.IdleSupervisorPids()));
        await WaitUntilAsync(() => !Directory.Exists($"/proc/{supervisor}"), $"the job's supervisor {supervisor} is still there after the job's end (not reaped?)");
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_FromThePoolFails_BothSupervisorsAreReaped()
    {
        // A job whose exec fails makes the copy report a failure and exit at once: both the pooled supervisor and its
        // copy are our children, and neither may stay a zombie.
        await using var t = TestRunner.Create(o => o with { SupervisorPoolSize = 1 });
        await t.WaitForSupervisorPoolAsync(Ct);
        var idle = Assert.Single(t.Runner.IdleSupervisorPids());
        var zombiesBefore = ZombieSupervisors();

        Assert.Throws<JobStartException>(() => t.Runner.Start(new JobSpec("/proc/self/fd/no-such-program", [])));

        await WaitUntilAsync(() => !Directory.Exists($"/proc/{idle}"), $"the pooled supervisor {idle} is still there (not reaped?)");
        // The copy's pid is not known here; a supervisor left unreaped stays a zombie child of ours. Earlier tests
        // that drop a runner as a crash would leave theirs as zombies too, so only new ones count.
        await WaitUntilAsync(
            () => !ZombieSupervisors().Except(zombiesBefore).Any(),
            "a supervisor of the failed start is still a zombie child of ours (not reaped)");
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_IdleSupervisorsKilled_JobStartsWithANewOne()
    {
        await using var t = TestRunner.Create(o => o with { SupervisorPoolSize = 2 });
        await t.WaitForSupervisorPoolAsync(Ct);
        foreach (var pid in t.Runner.IdleSupervisorPids())
        {
            Assert.Equal(0, Interop.Sys.Kill(pid, Interop.Sys.SIGKILL)); // started by this test's runner
        }

        var job = t.Start("echo", "still-starts", "exit", "0");
        var status = await job.Completion.WaitAsync(Ct);

        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal("still-starts\n", t.Output(job));
    }

    [Fact(Timeout = 30_000)]
    public async Task Dispose_IdleSupervisorsExitAndAreReaped()
    {
        var t = TestRunner.Create(o => o with { SupervisorPoolSize = 2 });
        int[] idle;
        try
        {
            await t.WaitForSupervisorPoolAsync(Ct);
            idle = t.Runner.IdleSupervisorPids();
            Assert.Equal(2, idle.Length);
            Assert.All(idle, pid => Assert.Equal("jobworker-shim\0pool\0", File.ReadAllText($"/proc/{pid}/cmdline")));
        }
        finally
        {
            await t.DisposeAsync();
        }

        // Exited and reaped, not left as zombies: no process of that pid is a jobworker-shim any more.
        Assert.All(idle, pid => Assert.False(IsSupervisor(pid), $"pid {pid} is still a jobworker-shim"));
    }

    private static int ParentOf(int pid)
    {
        // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[1], CultureInfo.InvariantCulture);
    }

    private static List<int> ChildrenOf(int pid)
    {
        var children = new List<int>();
        foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            try
            {
                children.AddRange(File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture)));
            }
            catch (IOException)
            {
                // The thread ended meanwhile; its children moved to another thread, which is read as well.
            }
        }

        return children;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string failure)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(25, Ct);
        }

        Assert.True(condition(), failure);
    }

    private static List<int> ZombieSupervisors()
        => [.. ChildrenOf(Environment.ProcessId).Where(pid => IsSupervisor(pid) && !TestRunner.ProcessExists(pid))];

    private static bool IsSupervisor(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/stat").Contains("(jobworker-shim)", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }
}
