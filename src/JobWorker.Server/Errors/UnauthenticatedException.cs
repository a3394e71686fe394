namespace JobWorker.Server.Errors;

/// <summary>The connection carries no usable identity. Answers Unauthenticated.</summary>
public sealed class UnauthenticatedException : Exception
{
    public UnauthenticatedException()
    {
    }

    public UnauthenticatedException(string message)
        : base(message)
    {
    }

    public UnauthenticatedException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
