using JobWorker.Cli.Formatting;

namespace JobWorker.Cli.Commands;

/// <summary>What every verb shares: the connection options, the signal state and the error writer.</summary>
internal sealed class CliContext
{
    public GlobalOptions Globals { get; } = new();

    /// <summary>130/143 once SIGINT/SIGTERM arrived; set by the entry point.</summary>
    public Func<int?> SignalExitCodeProvider { get; init; } = () => null;

    public int? SignalExitCode => SignalExitCodeProvider();

    public TextWriter Error { get; init; } = Console.Error;

    public void ReportError(string verb, string message, Exception? exception = null) => Notify(verb, message, exception);

    /// <summary>A line on stderr about what the command is doing (never on stdout, which carries data).</summary>
    public void Notify(string verb, string message, Exception? exception = null)
    {
        // Always one line: what failed and what to do (details only with WORKER_DEBUG=1). Messages may echo a job's
        // command or our arguments: no control character of theirs reaches the terminal.
        Error.WriteLine($"worker {TerminalText.Escape(verb)}: {TerminalText.Escape(message)}");
        if (exception is not null && Environment.GetEnvironmentVariable("WORKER_DEBUG") is "1" or "true")
        {
            Error.WriteLine(TerminalText.Escape(exception.ToString().ReplaceLineEndings("\n"), keepLineFeeds: true));
        }
    }
}
