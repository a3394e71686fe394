namespace JobWorker.Core.Jobs;

/// <summary>An error in a job's background work (draining output, cleanup) with no caller to throw to.</summary>
public sealed class JobBackgroundErrorEventArgs(Guid jobId, string operation, Exception exception) : EventArgs
{
    /// <summary>The job concerned.</summary>
    public Guid JobId { get; } = jobId;

    /// <summary>What was being done, for example "removing the cgroup".</summary>
    public string Operation { get; } = operation;

    /// <summary>The error.</summary>
    public Exception Exception { get; } = exception;
}
