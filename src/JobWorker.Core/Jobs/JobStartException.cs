namespace JobWorker.Core.Jobs;

/// <summary>
/// A job could not be started. Nothing of it remains: no process, no cgroup, no log.
/// The runner stays usable.
/// </summary>
public sealed class JobStartException : JobWorkerException
{
    public JobStartException(JobStartFailure reason, string message, int errno = 0, Exception? innerException = null)
        : base(message, innerException)
    {
        Reason = reason;
        Errno = errno;
    }

    /// <summary>Why the start failed.</summary>
    public JobStartFailure Reason { get; }

    /// <summary>The Linux errno of the failing step, or 0 when there is none.</summary>
    public int Errno { get; }
}
