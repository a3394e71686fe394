using JobWorker.Core.Jobs;

namespace JobWorker.Core.State;

/// <summary>The server's durable record of one job (<c>&lt;state&gt;/jobs/&lt;id&gt;/job.json</c>).</summary>
internal sealed record JobRecord
{
    public required Guid Id { get; init; }

    /// <summary>The spec as started, with the isolation the job got and its owner.</summary>
    public required JobSpec Spec { get; init; }

    /// <summary>The client's idempotency key, if it sent one.</summary>
    public string? RequestId { get; init; }

    /// <summary>A digest of the request that carried <see cref="RequestId"/> (so a retry can be told from a reuse).</summary>
    public string? RequestFingerprint { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>When a stop was requested, so a restarted server still reports <see cref="JobState.Stopped"/>.</summary>
    public DateTimeOffset? StopRequestedAt { get; init; }

    /// <summary>When the stop's grace ends and the job is killed.</summary>
    public DateTimeOffset? StopDeadline { get; init; }

    /// <summary>The final status once the job has ended and the server has recorded it; null while it runs.</summary>
    public JobStatus? Final { get; init; }
}
