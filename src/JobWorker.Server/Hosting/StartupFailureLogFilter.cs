namespace JobWorker.Server.Hosting;

/// <summary>
/// The host logs a failed start ("Hosting failed to start") with the exception's stack trace. <c>Program</c> reports
/// each expected start-up failure as one line on stderr (and the runtime prints any unexpected one), so until the
/// host has started, errors of the host's own category are not logged; afterwards they are, as configured.
/// </summary>
internal sealed class StartupFailureLogFilter
{
    /// <summary>The category of <c>Microsoft.Extensions.Hosting.Internal.Host</c>'s log messages.</summary>
    public const string Category = "Microsoft.Extensions.Hosting.Internal.Host";

    private volatile bool _started;

    /// <summary>Whether a message of <see cref="Category"/> at <paramref name="level"/> is logged. The shipped
    /// default level (Information) applies: a filter replaces the configured level for its category.</summary>
    public bool IsEnabled(LogLevel level) => level >= LogLevel.Information && (level < LogLevel.Error || _started);

    /// <summary>Called when the host has started.</summary>
    public void Started() => _started = true;
}
