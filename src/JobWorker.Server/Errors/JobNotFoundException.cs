namespace JobWorker.Server.Errors;

/// <summary>A job id that does not exist or that the caller may not see (the two answer alike). Answers NotFound.</summary>
public sealed class JobNotFoundException : Exception
{
    public JobNotFoundException()
    {
    }

    public JobNotFoundException(string message)
        : base(message)
    {
    }

    public JobNotFoundException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
