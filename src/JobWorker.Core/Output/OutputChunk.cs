namespace JobWorker.Core.Output;

/// <summary>A run of output bytes and where they start in the job's output.</summary>
/// <param name="Offset">Offset of <paramref name="Data"/>[0] from the first byte the job wrote.</param>
/// <param name="Data">
/// The bytes. The memory belongs to the reader and is valid only until the enumerator moves on;
/// copy it to keep it.
/// </param>
public readonly record struct OutputChunk(long Offset, ReadOnlyMemory<byte> Data)
{
    /// <summary>
    /// Set on the first chunk of a tail read that asked for more lines than the last
    /// <see cref="OutputReadOptions.MaxTailScanBytes"/> hold: the read starts at the first whole line within that
    /// window (or at its first byte), not at the N-th line from the end.
    /// </summary>
    public bool TailBounded { get; init; }
}
