using System.Diagnostics;

namespace JobWorker.Core.Diagnostics;

/// <summary>
/// The library's <see cref="ActivitySource"/>: a <see cref="Jobs.JobRunner.Start"/> span with one child per phase
/// (<c>prepare</c>, <c>record</c>, <c>cgroup</c>, <c>spawn</c>). Subscribe with OpenTelemetry's
/// <c>AddSource(JobTracing.SourceName)</c> or an <see cref="ActivityListener"/>; with no listener no span is created.
/// </summary>
public static class JobTracing
{
    /// <summary>The name of the library's activity source.</summary>
    public const string SourceName = "JobWorker.Core";

    /// <summary>The span around <see cref="Jobs.JobRunner.Start"/>.</summary>
    public const string StartActivityName = "JobRunner.Start";

    /// <summary>Tag with the job's id (as the API writes it, <c>xxxxxxxx-xxxx-...</c>) on the start span, once the id exists.</summary>
    public const string JobIdTag = "jobworker.job.id";

    /// <summary>Tag with the job's owner on the start span.</summary>
    public const string OwnerTag = "jobworker.job.owner";

    /// <summary>Tag on the <c>spawn</c> span: true when a supervisor started ahead of time was used.</summary>
    public const string PooledSupervisorTag = "jobworker.supervisor.pooled";

    internal static readonly ActivitySource Source = new(SourceName, typeof(JobTracing).Assembly.GetName().Version?.ToString());

    /// <summary>Ends <paramref name="phase"/> (if any) and starts the next phase as a sibling under the same parent.</summary>
    internal static Activity? NextPhase(Activity? phase, string name)
    {
        phase?.Dispose();
        return Source.StartActivity(name);
    }

    /// <summary>Marks <paramref name="activity"/> failed with the exception's message; false, for use in a filter.</summary>
    internal static bool Failed(Activity? activity, Exception exception)
    {
        activity?.SetStatus(ActivityStatusCode.Error, exception.Message);
        activity?.SetTag("error.type", exception.GetType().FullName);
        return false;
    }
}
