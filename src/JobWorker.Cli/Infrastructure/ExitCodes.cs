namespace JobWorker.Cli.Infrastructure;

/// <summary>The exit codes of <c>worker</c>; <c>run</c> additionally exits with the job's own code.</summary>
internal static class ExitCodes
{
    public const int Success = 0;

    /// <summary>The command was understood but failed, for a reason none of the codes below names (a server error, bad files…).</summary>
    public const int Failure = 1;

    /// <summary>The command line itself is wrong (unknown option, invalid value, missing argument).</summary>
    public const int Usage = 2;

    /// <summary>What the command names does not exist: the server answered NotFound (a job), or a context is not in the config file.</summary>
    public const int NotFound = 3;

    /// <summary>
    /// No answer from the server: no connection (refused, unknown host, timed out, TLS handshake failed or cut), the
    /// connection was lost before the answer, or the server said Unavailable (it is shutting down). Worth retrying later.
    /// </summary>
    public const int CannotConnect = 4;

    /// <summary>The server refused the request for who asked or what they may use: PermissionDenied, Unauthenticated, ResourceExhausted.</summary>
    public const int Refused = 5;

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
