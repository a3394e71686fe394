namespace JobWorker.Cli.Connection;

/// <summary>
/// No connection to the server within the connect timeout: the request was never sent. An IOException, so gRPC
/// reports it as Unavailable; its message is the line the user sees.
/// </summary>
internal sealed class ServerUnreachableException : IOException
{
    public ServerUnreachableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public ServerUnreachableException()
    {
    }

    public ServerUnreachableException(string message)
        : base(message)
    {
    }
}
