namespace JobWorker.Core.Jobs;

/// <summary>The base of every error JobWorker.Core raises on purpose.</summary>
public class JobWorkerException : Exception
{
    public JobWorkerException()
    {
    }

    public JobWorkerException(string message)
        : base(message)
    {
    }

    public JobWorkerException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
