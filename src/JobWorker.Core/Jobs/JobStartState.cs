namespace JobWorker.Core.Jobs;

/// <summary>
/// The process state every job starts with, whatever the server's own: the server's runtime raises its open-file
/// limit, and a service manager may give it another umask, OOM score, priority or CPU set; none of that reaches a
/// job. The defaults are systemd's for a service. Besides these values, every job starts with the
/// <c>SCHED_OTHER</c> policy, no I/O priority class, every CPU its cgroup allows, and a fresh session keyring of its
/// own user. See docs/security.md ("What a job starts with").
/// </summary>
public sealed record JobStartState
{
    /// <summary>
    /// The soft <c>RLIMIT_NOFILE</c>. <see langword="null"/> (the default) means 1024, as systemd gives services, or
    /// the hard limit when that is lower: <c>select()</c> cannot handle a file descriptor above 1023, and programs
    /// that need more raise their soft limit up to the hard one.
    /// </summary>
    public long? OpenFilesSoftLimit { get; init; }

    /// <summary>The hard <c>RLIMIT_NOFILE</c>; <see langword="null"/> (the default) means the server's own hard limit.</summary>
    public long? OpenFilesHardLimit { get; init; }

    /// <summary>The file mode creation mask, 0 to 0777 (octal). Default 0022.</summary>
    public int Umask { get; init; } = 0b_000_010_010;

    /// <summary>
    /// <c>/proc/self/oom_score_adj</c>, -1000 (never chosen by the OOM killer) to 1000 (chosen first). Default 0.
    /// Set while the job still has the server's privileges, so values below the server's own work too.
    /// </summary>
    public int OomScoreAdjust { get; init; }

    /// <summary>The nice value, -20 (highest priority) to 19. Default 0.</summary>
    public int Nice { get; init; }
}
