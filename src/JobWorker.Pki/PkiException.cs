namespace JobWorker.Pki;

/// <summary>A PKI file could not be read or written, or its content is unusable. The message names the file.</summary>
public sealed class PkiException : Exception
{
    public PkiException()
    {
    }

    public PkiException(string message)
        : base(message)
    {
    }

    public PkiException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
