using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

public sealed class JobRunnerSmokeTests
{
    [Fact(Timeout = 30_000)]
    public async Task Start_ExitCode_ReportedAsExited()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "hello", "exit", "3");

        var status = await job.Completion.WaitAsync(TestContext.Current.CancellationToken);

        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal(3, status.ExitCode);
        Assert.Equal("hello\n", t.Output(job));
        Assert.False(Directory.Exists(job.CgroupPath));
    }
}
