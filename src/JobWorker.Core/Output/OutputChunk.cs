namespace JobWorker.Core.Output;

/// <summary>A run of output bytes and where they start in the job's output.</summary>
/// <param name="Offset">Offset of <paramref name="Data"/>[0] from the first byte the job wrote.</param>
/// <param name="Data">
/// The bytes. The memory belongs to the reader and is valid only until the enumerator moves on;
/// copy it to keep it.
/// </param>
public readonly record struct OutputChunk(long Offset, ReadOnlyMemory<byte> Data);
