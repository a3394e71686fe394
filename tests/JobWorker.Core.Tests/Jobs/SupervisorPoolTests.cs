using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

/// <summary>
/// Supervisors started ahead of their jobs (the runner's pool): real idle <c>jobworker-shim pool</c> processes, taken
/// by starts, killed from outside, and ended with the runner.
/// </summary>
public sealed class SupervisorPoolTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 30_000)]
    public async Task Start_FromThePool_SupervisorMovedIntoTheJobsGroupAndPoolRefilled()
    {
        await using var t = TestRunner.Create(o => o with { SupervisorPoolSize = 1 });
        await t.WaitForSupervisorPoolAsync(Ct);
        var idle = Assert.Single(t.Runner.IdleSupervisorPids());

        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["env", "GREETING", "exit", "6"]) { Environment = new Dictionary<string, string> { ["GREETING"] = "hello from the pool" } });
        var status = await job.Completion.WaitAsync(Ct);

        Assert.Equal(6, status.ExitCode);
        Assert.Contains("hello from the pool", t.Output(job), StringComparison.Ordinal);
        await t.WaitForSupervisorPoolAsync(Ct);
        Assert.NotEqual(idle, Assert.Single(t.Runner.IdleSupervisorPids()));
        Assert.False(TestRunner.ProcessExists(idle)); // the job's supervisor recorded the end and exited
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
