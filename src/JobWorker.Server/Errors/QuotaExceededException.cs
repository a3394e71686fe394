namespace JobWorker.Server.Errors;

/// <summary>
/// A start would take the caller over a quota (retained ended jobs, log bytes), or the log file system is below its
/// free-space watermark. Answers ResourceExhausted; the message names the quota, the use and how to free it.
/// </summary>
public sealed class QuotaExceededException : Exception
{
    public QuotaExceededException()
    {
    }

    public QuotaExceededException(string message)
        : base(message)
    {
    }

    public QuotaExceededException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
