namespace JobWorker.Cli.Infrastructure;

/// <summary>The exit codes of <c>worker</c>; <c>run</c> additionally exits with the job's own code.</summary>
internal static class ExitCodes
{
    public const int Success = 0;

    /// <summary>The command was understood but failed (server error, unreachable server, bad certificate…).</summary>
    public const int Failure = 1;

    /// <summary>The command line itself is wrong (unknown option, invalid value, missing argument).</summary>
    public const int Usage = 2;

    /// <summary>
    /// <c>logs -f</c> or <c>run</c> lost the server mid-stream and it was not back within the reconnect timeout; the job
    /// itself may still run. EX_TEMPFAIL of sysexits.h: a temporary failure, try again later.
    /// </summary>
    public const int ServerLost = 75;

    /// <summary>A reader closed our stdout (for example <c>worker logs ID | head</c>): what a shell reports for SIGPIPE.</summary>
    public const int BrokenPipe = 128 + 13;

    public const int SigInt = 128 + 2;

    public const int SigTerm = 128 + 15;
}
