namespace JobWorker.Core.Jobs;

/// <summary>
/// Aggregate limits of one user's cgroup (<c>&lt;root&gt;/users/&lt;user&gt;</c>), which holds every job of that user
/// and their supervisors: together they never use more than this, whatever each job's own limits.
/// </summary>
public sealed record UserCgroupLimits
{
    /// <summary>No aggregate limits.</summary>
    public static UserCgroupLimits None { get; } = new();

    /// <summary>Memory of all the user's jobs together (<c>memory.max</c>).</summary>
    public long? MemoryBytes { get; init; }

    /// <summary>Processes and threads of all the user's jobs together (<c>pids.max</c>).</summary>
    public long? MaxProcesses { get; init; }

    /// <summary>CPU time of all the user's jobs together, in cores (<c>cpu.max</c>).</summary>
    public double? CpuCores { get; init; }

    /// <summary>The user's share of CPU time against other users when the CPU is busy (<c>cpu.weight</c>, 1–10000; the kernel's default is 100).</summary>
    public int? CpuWeight { get; init; }

    /// <summary>Whether any limit is set.</summary>
    public bool IsEmpty => MemoryBytes is null && MaxProcesses is null && CpuCores is null && CpuWeight is null;
}
