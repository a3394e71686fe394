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

    /// <summary>Settings that failed validation: one line for one problem, otherwise one indented line each.</summary>
    public static StartupException InvalidConfiguration(IReadOnlyCollection<string> errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        return new StartupException(errors.Count == 1
            ? "invalid configuration: " + errors.First()
            : "invalid configuration:\n  " + string.Join("\n  ", errors));
    }
}
