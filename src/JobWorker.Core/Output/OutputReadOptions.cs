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

    /// <summary>
    /// Keep reading new output as it is written. The enumeration ends after the last byte once the job has ended.
    /// </summary>
    public bool Follow { get; init; }
}
