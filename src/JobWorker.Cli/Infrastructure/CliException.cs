namespace JobWorker.Cli.Infrastructure;

/// <summary>A failure with a message fit for the user: it is printed as one line on stderr.</summary>
internal sealed class CliException : Exception
{
    public CliException(string message, int exitCode = ExitCodes.Failure)
        : base(message)
    {
        ExitCode = exitCode;
    }

    public CliException(string message, int exitCode, Exception innerException)
        : base(message, innerException)
    {
        ExitCode = exitCode;
    }

    public CliException(string message, Exception innerException)
        : base(message, innerException)
    {
        ExitCode = ExitCodes.Failure;
    }

    public CliException()
        : this("worker failed")
    {
    }

    public CliException(string message)
        : this(message, ExitCodes.Failure)
    {
    }

    public int ExitCode { get; }
}
