namespace JobWorker.Server.Errors;

/// <summary>An operation needs an ended job (remove). Answers FailedPrecondition.</summary>
public sealed class JobStillRunningException : Exception
{
    public JobStillRunningException()
    {
    }

    public JobStillRunningException(string message)
        : base(message)
    {
    }

    public JobStillRunningException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
