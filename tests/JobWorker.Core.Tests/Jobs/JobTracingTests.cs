using System.Collections.Concurrent;
using System.Diagnostics;
using JobWorker.Core.Diagnostics;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

/// <summary>The library's spans, seen by a plain <see cref="ActivityListener"/> (what OpenTelemetry's AddSource uses).</summary>
public sealed class JobTracingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 30_000)]
    public async Task Start_Listened_StartSpanWithFourPhasesInOrder()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = Listen(spans);
        await using var t = TestRunner.Create();

        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["exit", "0"]) { Owner = "carol" });
        await job.Completion.WaitAsync(Ct);

        // Other tests start jobs in parallel: this job's span is found by its id, its phases by their parent.
        var start = Assert.Single(spans, s => s.OperationName == JobTracing.StartActivityName && (string?)s.GetTagItem(JobTracing.JobIdTag) == job.Id.ToString("D"));
        Assert.Equal(default, start.ParentSpanId);
        Assert.Equal("carol", start.GetTagItem(JobTracing.OwnerTag));
        Assert.Equal(ActivityStatusCode.Unset, start.Status);
        var phases = spans.Where(s => s.ParentSpanId == start.SpanId).OrderBy(s => s.StartTimeUtc).ToList();
        Assert.Equal(["prepare", "record", "cgroup", "spawn"], phases.Select(p => p.OperationName));
        Assert.All(phases, p => Assert.Equal(start.TraceId, p.TraceId));
        Assert.All(phases, p => Assert.True(p.StartTimeUtc >= start.StartTimeUtc && p.StartTimeUtc + p.Duration <= start.StartTimeUtc + start.Duration, $"{p.OperationName} outside {start.OperationName}"));
        Assert.IsType<bool>(phases[3].GetTagItem(JobTracing.PooledSupervisorTag));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_MissingExecutable_SpawnPhaseAndStartSpanFailed()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = Listen(spans);
        await using var t = TestRunner.Create();
        var command = "/nonexistent/" + Guid.NewGuid().ToString("N");

        Assert.Throws<JobStartException>(() => t.Runner.Start(new JobSpec(command)));

        var start = Assert.Single(spans, s => s.OperationName == JobTracing.StartActivityName && s.StatusDescription?.Contains(command, StringComparison.Ordinal) == true);
        Assert.Equal(ActivityStatusCode.Error, start.Status);
        Assert.Equal(typeof(JobStartException).FullName, start.GetTagItem("error.type"));
        Assert.Null(start.GetTagItem(JobTracing.JobIdTag));
        var last = spans.Where(s => s.ParentSpanId == start.SpanId).OrderBy(s => s.StartTimeUtc).Last();
        Assert.Equal(("spawn", ActivityStatusCode.Error), (last.OperationName, last.Status));
    }

    private static ActivityListener Listen(ConcurrentQueue<Activity> spans)
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == JobTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }
}
