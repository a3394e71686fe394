namespace JobWorker.Core.Output;

/// <summary>Where to start reading a job's output and whether to follow it.</summary>
public sealed record OutputReadOptions
{
    /// <summary>Read everything from the first byte without following.</summary>
    public static OutputReadOptions Default { get; } = new();

    /// <summary>Byte offset to start at; 0 is the first byte the job wrote. Ignored when <see cref="TailLines"/> is set.</summary>
    public long FromOffset { get; init; }

    /// <summary>Start at the beginning of the last N lines instead of <see cref="FromOffset"/>.</summary>
    public int? TailLines { get; init; }

    /// <summary>The default for <see cref="MaxTailScanBytes"/>: 1 MiB.</summary>
    public const long DefaultMaxTailScanBytes = 1L << 20;

    /// <summary>
    /// How far back from the end a <see cref="TailLines"/> read looks for line breaks. A request for more lines than
    /// this window holds starts at the window's first whole line and says so (<see cref="OutputChunk.TailBounded"/>),
    /// so one request costs at most this many bytes of reading, whatever the log's size.
    /// </summary>
    public long MaxTailScanBytes { get; init; } = DefaultMaxTailScanBytes;

    /// <summary>
    /// Keep reading new output as it is written. The enumeration ends after the last byte once the job has ended.
    /// </summary>
    public bool Follow { get; init; }
}
