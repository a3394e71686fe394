namespace JobWorker.Core.Jobs;

/// <summary>A snapshot of a job's state. Immutable; ask the job again for a newer one.</summary>
public sealed record JobStatus
{
    /// <summary>The lifecycle state.</summary>
    public required JobState State { get; init; }

    /// <summary>The main process's id in the server's PID namespace.</summary>
    public required int Pid { get; init; }

    /// <summary>The exit code when <see cref="State"/> is <see cref="JobState.Exited"/> (or a stopped job that exited).</summary>
    public int? ExitCode { get; init; }

    /// <summary>The terminating signal number when the main process was killed by a signal.</summary>
    public int? Signal { get; init; }

    /// <summary>Whether the kernel's OOM killer killed a process of the job (<c>memory.events oom_kill</c>).</summary>
    public bool OomKilled { get; init; }

    /// <summary>When the program was exec'd.</summary>
    public required DateTimeOffset StartedAt { get; init; }

    /// <summary>When the job ended, or <see langword="null"/> while it runs.</summary>
    public DateTimeOffset? EndedAt { get; init; }

    /// <summary>Resource usage (the last figures read before the cgroup was removed, once the job has ended).</summary>
    public JobUsage Usage { get; init; } = JobUsage.Empty;

    /// <summary>Bytes of output stored in the job's log.</summary>
    public long LogBytes { get; init; }

    /// <summary>Whether output was discarded because the log reached its size cap or the disk was full.</summary>
    public bool LogTruncated { get; init; }

    /// <summary>Bytes of output discarded (see <see cref="LogTruncated"/>).</summary>
    public long LogDroppedBytes { get; init; }

    /// <summary>
    /// The error that stopped the log from storing output before its cap (<c>ENOSPC</c>: the file system was full),
    /// or <see langword="null"/>. Known once the job has ended. The log keeps an exact prefix of the output.
    /// </summary>
    public int? LogErrno { get; init; }

    /// <summary>What <see cref="LogErrno"/> means, such as <c>No space left on device (ENOSPC)</c>; null without one.</summary>
    public string? LogError => LogErrno is { } errno ? Interop.Describe(errno) : null;

    /// <summary>Whether the job has ended.</summary>
    public bool HasEnded => State != JobState.Running;
}
