using System.Buffers;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Proto = JobWorker.Protocol.V1;

namespace JobWorker.Server.Services;

/// <summary>
/// A ListJobs answer whose entries are already encoded <see cref="Proto.JobStatus"/> messages. Its encoding is
/// byte for byte the one of a <see cref="Proto.ListJobsResponse"/> with those entries and token: field 1 (<c>jobs</c>)
/// once per entry as a length-delimited value, then field 2 (<c>next_page_token</c>) unless it is empty.
/// </summary>
public sealed class ListJobsPage
{
    private const byte JobsTag = (1 << 3) | 2;       // field 1, length-delimited
    private const byte NextPageTokenTag = (2 << 3) | 2; // field 2, length-delimited

    /// <summary>A page with no entries and no next page.</summary>
    public static readonly ListJobsPage Empty = new([], "");

    public ListJobsPage(IReadOnlyList<byte[]> entries, string nextPageToken)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(nextPageToken);
        Entries = entries;
        NextPageToken = nextPageToken;
    }

    /// <summary>Each entry: an encoded <see cref="Proto.JobStatus"/>.</summary>
    public IReadOnlyList<byte[]> Entries { get; }

    /// <summary>Pass as page_token for the next page; empty when this was the last page.</summary>
    public string NextPageToken { get; }

    /// <summary>The encoded size in bytes.</summary>
    public int CalculateSize()
    {
        var size = 0;
        foreach (var entry in Entries)
        {
            size += 1 + CodedOutputStream.ComputeLengthSize(entry.Length) + entry.Length;
        }

        return NextPageToken.Length == 0 ? size : size + 1 + CodedOutputStream.ComputeStringSize(NextPageToken);
    }

    /// <summary>The encoding: what a <see cref="Proto.ListJobsResponse"/> with these entries encodes to.</summary>
    public byte[] ToByteArray()
    {
        var buffer = new ArrayBufferWriter<byte>(Math.Max(1, CalculateSize()));
        WriteTo(buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The page as the generated message (for tests and the marshaller's read side).</summary>
    public Proto.ListJobsResponse ToMessage() => Proto.ListJobsResponse.Parser.ParseFrom(ToByteArray());

    internal static void Serialize(ListJobsPage page, SerializationContext context)
    {
        context.SetPayloadLength(page.CalculateSize());
        page.WriteTo(context.GetBufferWriter());
        context.Complete();
    }

    // The server never reads a response; this keeps the marshaller whole (a page read back from the wire).
    internal static ListJobsPage Deserialize(DeserializationContext context)
    {
        var message = Proto.ListJobsResponse.Parser.ParseFrom(context.PayloadAsReadOnlySequence());
        return new ListJobsPage(message.Jobs.Select(j => j.ToByteArray()).ToArray(), message.NextPageToken);
    }

    private void WriteTo(IBufferWriter<byte> writer)
    {
        Span<byte> header = stackalloc byte[1 + 5];
        foreach (var entry in Entries)
        {
            header[0] = JobsTag;
            writer.Write(header[..(1 + WriteVarint(header[1..], (uint)entry.Length))]);
            writer.Write(entry);
        }

        if (NextPageToken.Length > 0)
        {
            var token = Encoding.UTF8.GetBytes(NextPageToken);
            header[0] = NextPageTokenTag;
            writer.Write(header[..(1 + WriteVarint(header[1..], (uint)token.Length))]);
            writer.Write(token);
        }
    }

    private static int WriteVarint(Span<byte> target, uint value)
    {
        var i = 0;
        while (value >= 0x80)
        {
            target[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        target[i++] = (byte)value;
        return i;
    }
}
