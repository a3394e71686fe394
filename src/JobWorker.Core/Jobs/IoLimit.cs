namespace JobWorker.Core.Jobs;

/// <summary>A disk IO limit for one block device (cgroup v2 <c>io.max</c>).</summary>
/// <param name="Device">A block device path such as <c>/dev/sda</c> (a partition resolves to its disk) or <c>MAJ:MIN</c>.</param>
public sealed record IoLimit(string Device)
{
    /// <summary>Maximum bytes read per second, or <see langword="null"/> for no limit.</summary>
    public long? ReadBytesPerSecond { get; init; }

    /// <summary>Maximum bytes written per second, or <see langword="null"/> for no limit.</summary>
    public long? WriteBytesPerSecond { get; init; }

    /// <summary>Maximum read operations per second, or <see langword="null"/> for no limit.</summary>
    public long? ReadIops { get; init; }

    /// <summary>Maximum write operations per second, or <see langword="null"/> for no limit.</summary>
    public long? WriteIops { get; init; }
}
