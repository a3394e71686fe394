using System.Security.Cryptography;
using JobWorker.Core.Output;

namespace JobWorker.Core.Tests.Output;

/// <summary>What one reader received.</summary>
internal sealed record ReadResult(long FirstOffset, long ByteCount, string Sha256, byte[]? Data, int Chunks);

internal static class OutputReader
{
    /// <summary>
    /// Enumerates to the end, checking that chunks are contiguous (each starts where the last ended) and copying
    /// each chunk at once (the memory is only valid until the next MoveNext).
    /// </summary>
    public static async Task<ReadResult> ReadAllAsync(
        OutputLog log, OutputReadOptions options, CancellationToken cancellationToken, bool keepData = true, Action<OutputChunk>? onChunk = null)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var data = keepData ? new MemoryStream() : null;
        long first = -1, next = -1, count = 0;
        int chunks = 0;
        await foreach (var chunk in log.ReadAsync(options, cancellationToken))
        {
            if (first < 0)
            {
                first = next = chunk.Offset;
            }

            Assert.Equal(next, chunk.Offset);
            Assert.False(chunk.Data.IsEmpty, "a chunk is never empty");
            hash.AppendData(chunk.Data.Span);
            data?.Write(chunk.Data.Span);
            next += chunk.Data.Length;
            count += chunk.Data.Length;
            chunks++;
            onChunk?.Invoke(chunk);
        }

        return new ReadResult(first, count, Convert.ToHexString(hash.GetHashAndReset()), data?.ToArray(), chunks);
    }

    /// <summary>Waits, on the log's own signal, until it holds at least <paramref name="length"/> bytes.</summary>
    public static async Task WaitForLengthAsync(OutputLog log, long length, CancellationToken cancellationToken)
    {
        await foreach (var chunk in log.ReadAsync(new OutputReadOptions { Follow = true }, cancellationToken))
        {
            if (chunk.Offset + chunk.Data.Length >= length)
            {
                return;
            }
        }
    }
}
