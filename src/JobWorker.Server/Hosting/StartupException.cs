namespace JobWorker.Server.Hosting;

/// <summary>The server cannot start as configured; the message says why and how to fix it.</summary>
public sealed class StartupException : Exception
{
    public StartupException()
    {
    }

    public StartupException(string message)
        : base(message)
    {
    }

    public StartupException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
