using Grpc.Core;
using JobWorker.Protocol.V1;

namespace JobWorker.Server.Tests.Infrastructure;

/// <summary>Everything one StreamOutput call returned: the bytes (checked to be contiguous) and the final status.</summary>
internal sealed record StreamResult(long FirstOffset, byte[] Data, JobStatus? FinalStatus, int Messages)
{
    public static async Task<StreamResult> ReadAsync(AsyncServerStreamingCall<StreamOutputResponse> call, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        long? first = null;
        long next = -1;
        JobStatus? final = null;
        var messages = 0;
        await foreach (var message in call.ResponseStream.ReadAllAsync(cancellationToken))
        {
            messages++;
            Assert.Null(final); // nothing may follow the final status
            if (message.KindCase == StreamOutputResponse.KindOneofCase.FinalStatus)
            {
                final = message.FinalStatus;
                continue;
            }

            var chunk = message.Chunk;
            first ??= chunk.Offset;
            if (next >= 0)
            {
                Assert.Equal(next, chunk.Offset); // no gap, no overlap
            }

            next = chunk.Offset + chunk.Data.Length;
            chunk.Data.WriteTo(buffer);
        }

        return new StreamResult(first ?? 0, buffer.ToArray(), final, messages);
    }
}
