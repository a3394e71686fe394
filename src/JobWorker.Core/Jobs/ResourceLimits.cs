namespace JobWorker.Core.Jobs;

/// <summary>
/// Resource limits applied to a job's cgroup. Every limit that is set needs its cgroup controller;
/// a missing controller fails the start with <see cref="CgroupControllerUnavailableException"/>.
/// </summary>
public sealed record ResourceLimits
{
    /// <summary>No limits.</summary>
    public static ResourceLimits None { get; } = new();

    /// <summary>CPU time as a fraction of cores (0.5 = half a core), written to <c>cpu.max</c>.</summary>
    public double? CpuCores { get; init; }

    /// <summary>Memory limit in bytes (<c>memory.max</c>; swap is disabled for the job).</summary>
    public long? MemoryBytes { get; init; }

    /// <summary>Maximum number of processes and threads (<c>pids.max</c>).</summary>
    public long? MaxProcesses { get; init; }

    /// <summary>Per-device disk IO limits (<c>io.max</c>).</summary>
    public IReadOnlyList<IoLimit> Io { get; init; } = [];

    /// <summary>Whether any limit is set.</summary>
    public bool IsEmpty => CpuCores is null && MemoryBytes is null && MaxProcesses is null && Io.Count == 0;
}
