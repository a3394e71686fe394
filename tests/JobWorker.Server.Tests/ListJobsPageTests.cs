using System.Buffers;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using JobWorker.Protocol.V1;
using JobWorker.Server.Services;

namespace JobWorker.Server.Tests;

/// <summary>A page written from encoded entries is byte for byte the generated ListJobsResponse.</summary>
public sealed class ListJobsPageTests
{
    [Theory]
    [InlineData(0, 0, "")]
    [InlineData(1, 10, "")]
    [InlineData(3, 100, "token-é")]
    [InlineData(2, 200, "")] // entries of 128 bytes and more: two-byte lengths
    [InlineData(2, 20_000, "AQAAAAAAAAA")] // three-byte lengths
    [InlineData(100, 150, "next")]
    public void ToByteArray_EntriesAndToken_SameBytesAsTheGeneratedResponse(int count, int commandLength, string token)
    {
        var expected = new ListJobsResponse { NextPageToken = token };
        for (var i = 0; i < count; i++)
        {
            expected.Jobs.Add(new JobStatus
            {
                JobId = Guid.NewGuid().ToString(),
                Owner = "alice",
                Command = new string('c', commandLength),
                Args = { "-v", i.ToString(System.Globalization.CultureInfo.InvariantCulture) },
                State = JobState.Exited,
                ExitCode = i,
                StartedAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch.AddSeconds(i)),
                Usage = new ResourceUsage { CpuUsageUsec = i },
            });
        }

        var page = new ListJobsPage(expected.Jobs.Select(j => j.ToByteArray()).ToArray(), token);

        Assert.Equal(expected.ToByteArray(), page.ToByteArray());
        Assert.Equal(expected.CalculateSize(), page.CalculateSize());
        Assert.Equal(expected, page.ToMessage());
    }

    [Fact]
    public void Marshaller_PageWrittenAndReadBack_SameBytesAsTheGeneratedResponse()
    {
        var expected = new ListJobsResponse { NextPageToken = "next", Jobs = { new JobStatus { JobId = "a", Owner = "alice" }, new JobStatus { JobId = "b", Command = new string('c', 300) } } };
        var page = new ListJobsPage(expected.Jobs.Select(j => j.ToByteArray()).ToArray(), expected.NextPageToken);
        var marshaller = ListJobsEndpoint.Method.ResponseMarshaller;

        // The marshaller works on gRPC's contexts (as the server calls it); these hold the bytes in memory.
        var output = new BufferSerializationContext();
        marshaller.ContextualSerializer(page, output);
        var written = output.Written;
        var readBack = marshaller.ContextualDeserializer(new BufferDeserializationContext(written));

        Assert.Equal(expected.ToByteArray(), written);
        Assert.Equal(expected.ToByteArray(), readBack.ToByteArray());
        Assert.Equal(expected, ListJobsResponse.Parser.ParseFrom(written));
    }

    [Fact]
    public void Empty_NoEntriesNoToken_EncodesToNothing()
    {
        Assert.Empty(ListJobsPage.Empty.ToByteArray());
        Assert.Equal(new ListJobsResponse(), ListJobsPage.Empty.ToMessage());
    }

    private sealed class BufferSerializationContext : SerializationContext
    {
        private readonly ArrayBufferWriter<byte> _buffer = new();
        private int _length = -1;
        private bool _complete;

        public byte[] Written => _complete && _buffer.WrittenCount == _length ? _buffer.WrittenSpan.ToArray() : throw new InvalidOperationException($"incomplete: {_buffer.WrittenCount} of {_length} bytes, complete {_complete}");

        public override void SetPayloadLength(int payloadLength) => _length = payloadLength;

        public override IBufferWriter<byte> GetBufferWriter() => _buffer;

        public override void Complete() => _complete = true;
    }

    private sealed class BufferDeserializationContext(byte[] payload) : DeserializationContext
    {
        public override int PayloadLength => payload.Length;

        public override byte[] PayloadAsNewBuffer() => [.. payload];

        public override ReadOnlySequence<byte> PayloadAsReadOnlySequence() => new(payload);
    }
}
