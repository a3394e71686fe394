namespace JobWorker.Server.Errors;

/// <summary>The server is stopping and accepts no new jobs. Answers Unavailable.</summary>
public sealed class ServerShuttingDownException : Exception
{
    public ServerShuttingDownException()
    {
    }

    public ServerShuttingDownException(string message)
        : base(message)
    {
    }

    public ServerShuttingDownException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
