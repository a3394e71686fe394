namespace JobWorker.Server.Errors;

/// <summary>The caller has as many running jobs as the per-user cap allows. Answers ResourceExhausted.</summary>
public sealed class RunningJobLimitException : Exception
{
    public RunningJobLimitException()
    {
    }

    public RunningJobLimitException(string message)
        : base(message)
    {
    }

    public RunningJobLimitException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
