namespace JobWorker.Core.Jobs;

/// <summary>
/// Resource usage read from the job's cgroup. A <see langword="null"/> value means the host does not offer
/// that figure (for example, its controller is not enabled), not zero.
/// </summary>
public sealed record JobUsage
{
    /// <summary>No figures available.</summary>
    public static JobUsage Empty { get; } = new();

    /// <summary>Total CPU time in microseconds (<c>cpu.stat usage_usec</c>).</summary>
    public long? CpuUsageMicroseconds { get; init; }

    /// <summary>Number of periods in which the job was throttled (<c>cpu.stat nr_throttled</c>).</summary>
    public long? CpuThrottledPeriods { get; init; }

    /// <summary>Total throttled time in microseconds (<c>cpu.stat throttled_usec</c>).</summary>
    public long? CpuThrottledMicroseconds { get; init; }

    /// <summary>Current memory use in bytes (<c>memory.current</c>).</summary>
    public long? MemoryCurrentBytes { get; init; }

    /// <summary>Peak memory use in bytes (<c>memory.peak</c>).</summary>
    public long? MemoryPeakBytes { get; init; }

    /// <summary>Number of processes killed by the kernel's OOM killer (<c>memory.events oom_kill</c>).</summary>
    public long? OomKills { get; init; }

    /// <summary>Bytes read from block devices (<c>io.stat rbytes</c>, summed).</summary>
    public long? IoReadBytes { get; init; }

    /// <summary>Bytes written to block devices (<c>io.stat wbytes</c>, summed).</summary>
    public long? IoWriteBytes { get; init; }

    /// <summary>Current number of processes and threads (<c>pids.current</c>).</summary>
    public long? PidsCurrent { get; init; }
}
