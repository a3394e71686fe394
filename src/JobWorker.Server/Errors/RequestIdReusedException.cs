namespace JobWorker.Server.Errors;

/// <summary>A StartJob request_id the caller already used for a different spec. Answers AlreadyExists.</summary>
public sealed class RequestIdReusedException : Exception
{
    public RequestIdReusedException()
    {
    }

    public RequestIdReusedException(string message)
        : base(message)
    {
    }

    public RequestIdReusedException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
