namespace JobWorker.Cli.Formatting;

/// <summary>A job as printed by <c>--json</c>: stable names, raw numbers (bytes, microseconds), ISO 8601 times.</summary>
internal sealed class JobView
{
    public required string Id { get; init; }

    public required string Owner { get; init; }

    public required string Command { get; init; }

    public required IReadOnlyList<string> Args { get; init; }

    /// <summary>True when <see cref="Args"/> is only a prefix (a list entry); absent when it is complete.</summary>
    public bool? ArgsTruncated { get; init; }

    /// <summary>running, exited, signaled or stopped.</summary>
    public required string State { get; init; }

    public int Pid { get; init; }

    public int? ExitCode { get; init; }

    public int? Signal { get; init; }

    public bool OomKilled { get; init; }

    public DateTimeOffset? StartedAt { get; init; }

    public DateTimeOffset? EndedAt { get; init; }

    public LimitsView? Limits { get; init; }

    public IsolationView? Isolation { get; init; }

    public UsageView? Usage { get; init; }

    public long LogBytes { get; init; }

    public bool LogTruncated { get; init; }

    public long LogDroppedBytes { get; init; }

    public string? LogError { get; init; }
}

internal sealed class LimitsView
{
    public double? CpuCores { get; init; }

    public long? MemoryBytes { get; init; }

    public long? MaxProcesses { get; init; }

    public IReadOnlyList<IoLimitView>? Io { get; init; }
}

internal sealed class IoLimitView
{
    public required string Device { get; init; }

    public long? ReadBytesPerSecond { get; init; }

    public long? WriteBytesPerSecond { get; init; }

    public long? ReadIops { get; init; }

    public long? WriteIops { get; init; }
}

internal sealed class IsolationView
{
    public bool Pid { get; init; }

    public bool Mount { get; init; }

    public bool Network { get; init; }

    public bool Ipc { get; init; }

    public bool Uts { get; init; }
}

internal sealed class UsageView
{
    public long? CpuUsageUsec { get; init; }

    public long? CpuThrottledPeriods { get; init; }

    public long? CpuThrottledUsec { get; init; }

    public long? MemoryCurrentBytes { get; init; }

    public long? MemoryPeakBytes { get; init; }

    public long? OomKills { get; init; }

    public long? IoReadBytes { get; init; }

    public long? IoWriteBytes { get; init; }

    public long? PidsCurrent { get; init; }
}
