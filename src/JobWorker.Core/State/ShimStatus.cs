using System.Globalization;

namespace JobWorker.Core.State;

/// <summary>How a job's exit ended, as the supervisor reports it.</summary>
internal enum ShimExitKind
{
    /// <summary>The main process exited; <see cref="ShimStatus.ExitCode"/> holds its code.</summary>
    Exited,

    /// <summary>The main process was killed by a signal; <see cref="ShimStatus.Signal"/> holds it.</summary>
    Signaled,
}

/// <summary>
/// The supervisor's (<c>jobworker-shim</c>) status file, <c>&lt;state&gt;/jobs/&lt;id&gt;/shim.status</c>: <c>key=value</c>
/// lines. The start keys are written when the job runs, the end keys once it has ended and its output is drained.
/// </summary>
/// <remarks>
/// <code>
/// version=1
/// shim_pid=123
/// pid=124
/// started_at_ns=1732890000123456789     CLOCK_REALTIME nanoseconds since the Unix epoch
/// exit=exited|signaled                  the rest only once the job ended
/// code=N                                exit code, or signal number
/// ended_at_ns=N
/// log_bytes=N
/// log_dropped_bytes=N
/// log_errno=N                           0, or the errno that sealed the log (ENOSPC)
/// output_incomplete=0|1
/// </code>
/// Unknown keys are ignored, so a supervisor may add keys without a version change. The file is expected to be
/// replaced whole (written elsewhere and renamed), never seen half-written.
/// </remarks>
internal sealed record ShimStatus
{
    /// <summary>The newest <c>version</c> this server reads.</summary>
    public const int CurrentVersion = 1;

    public required int Version { get; init; }

    /// <summary>The supervisor's pid.</summary>
    public required int ShimPid { get; init; }

    /// <summary>The job's main process's pid.</summary>
    public required int Pid { get; init; }

    /// <summary>When the job's main process was started (100 ns precision).</summary>
    public required DateTimeOffset StartedAt { get; init; }

    /// <summary>How the main process ended, or null while it runs.</summary>
    public ShimExitKind? Exit { get; init; }

    /// <summary>The exit code when <see cref="Exit"/> is <see cref="ShimExitKind.Exited"/>.</summary>
    public int? ExitCode { get; init; }

    /// <summary>The signal number when <see cref="Exit"/> is <see cref="ShimExitKind.Signaled"/>.</summary>
    public int? Signal { get; init; }

    public DateTimeOffset? EndedAt { get; init; }

    /// <summary>Bytes stored in the output log.</summary>
    public long? LogBytes { get; init; }

    /// <summary>Bytes of output discarded (size cap or a write error).</summary>
    public long? LogDroppedBytes { get; init; }

    /// <summary>0, or the errno that stopped the log from storing output (e.g. ENOSPC).</summary>
    public int? LogErrno { get; init; }

    /// <summary>Whether the supervisor could not drain the whole output (e.g. processes kept the pipe open).</summary>
    public bool? OutputIncomplete { get; init; }

    /// <summary>Whether the end keys are present.</summary>
    public bool HasEnded => Exit is not null;

    /// <summary>Parses the file's text.</summary>
    /// <param name="text">The whole file.</param>
    /// <param name="path">The file, for messages.</param>
    /// <exception cref="StateFormatException">A version newer than <see cref="CurrentVersion"/>, a missing key, a malformed line or number.</exception>
    public static ShimStatus Parse(string text, string path)
    {
        ArgumentNullException.ThrowIfNull(text);
        var values = new Dictionary<string, (string Value, int Line)>(StringComparer.Ordinal);
        StateFormatException? firstSyntaxError = null;
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.Length == 0)
            {
                continue;
            }

            int eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                firstSyntaxError ??= Error(path, i + 1, $"expected key=value, found '{Shorten(line)}'");
                continue;
            }

            var key = line[..eq];
            if (!values.TryAdd(key, (line[(eq + 1)..], i + 1)))
            {
                firstSyntaxError ??= Error(path, i + 1, $"'{key}' appears twice (first on line {values[key].Line})");
            }
        }

        // The version decides how the rest reads, so a newer file is reported as newer, not as malformed.
        var version = Int(values, "version", path);
        if (version > CurrentVersion)
        {
            throw Error(path, values["version"].Line, $"version {version} is newer than this server reads ({CurrentVersion}); the job was started by a newer JobWorker. Use a newer server");
        }

        if (version < 1)
        {
            throw Error(path, values["version"].Line, $"version {version} is not a version");
        }

        if (firstSyntaxError is not null)
        {
            throw firstSyntaxError;
        }

        var status = new ShimStatus
        {
            Version = version,
            ShimPid = ProcessId(values, "shim_pid", path),
            Pid = ProcessId(values, "pid", path),
            StartedAt = Time(values, "started_at_ns", path),
        };

        if (!values.TryGetValue("exit", out var exit))
        {
            foreach (var endKey in (string[])["code", "ended_at_ns", "log_bytes", "log_dropped_bytes", "log_errno", "output_incomplete"])
            {
                if (values.TryGetValue(endKey, out var stray))
                {
                    throw Error(path, stray.Line, $"'{endKey}' without 'exit'");
                }
            }

            return status;
        }

        var kind = exit.Value switch
        {
            "exited" => ShimExitKind.Exited,
            "signaled" => ShimExitKind.Signaled,
            _ => throw Error(path, exit.Line, $"'exit' is '{Shorten(exit.Value)}', expected 'exited' or 'signaled'"),
        };
        var code = Int(values, "code", path);
        var incomplete = Int(values, "output_incomplete", path);
        if (incomplete > 1)
        {
            throw Error(path, values["output_incomplete"].Line, $"'output_incomplete' is {incomplete}, expected 0 or 1");
        }

        return status with
        {
            Exit = kind,
            ExitCode = kind == ShimExitKind.Exited ? code : null,
            Signal = kind == ShimExitKind.Signaled ? code : null,
            EndedAt = Time(values, "ended_at_ns", path),
            LogBytes = Long(values, "log_bytes", path),
            LogDroppedBytes = Long(values, "log_dropped_bytes", path),
            LogErrno = Int(values, "log_errno", path),
            OutputIncomplete = incomplete == 1,
        };
    }

    private static int ProcessId(Dictionary<string, (string Value, int Line)> values, string key, string path)
    {
        var pid = Int(values, key, path);
        return pid > 0 ? pid : throw Error(path, values[key].Line, $"'{key}' is {pid}, not a process id");
    }

    private static DateTimeOffset Time(Dictionary<string, (string Value, int Line)> values, string key, string path)
        => DateTimeOffset.UnixEpoch.AddTicks(Long(values, key, path) / 100);

    private static int Int(Dictionary<string, (string Value, int Line)> values, string key, string path)
    {
        var value = Long(values, key, path);
        return value <= int.MaxValue ? (int)value : throw Error(path, values[key].Line, $"'{key}' is {value}, too large");
    }

    // Non-negative decimal digits only: no sign, no spaces, no hex.
    private static long Long(Dictionary<string, (string Value, int Line)> values, string key, string path)
    {
        if (!values.TryGetValue(key, out var entry))
        {
            throw new StateFormatException(path, $"shim.status {path}: the required key '{key}' is missing.");
        }

        return long.TryParse(entry.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw Error(path, entry.Line, $"'{key}' is '{Shorten(entry.Value)}', not a non-negative decimal number");
    }

    private static StateFormatException Error(string path, int line, string message)
        => new(path, $"shim.status {path} line {line}: {message}.");

    private static string Shorten(string s) => s.Length <= 40 ? s : s[..40] + "...";
}
