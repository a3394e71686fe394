using Google.Protobuf;
using Grpc.Core;
using JobWorker.Protocol.V1;

namespace JobWorker.Bench.Server;

/// <summary>
/// The baseline: the same service contract with nothing behind it — no identity, policy, validation, Core or
/// log file. GetJob returns a prepared status, ListJobs a prepared page; StreamOutput writes <c>x-bytes</c> bytes in <c>x-chunk</c>-sized
/// messages from one prepared buffer, then a final status.
/// </summary>
internal sealed class BareService : global::JobWorker.Protocol.V1.JobWorker.JobWorkerBase
{
    private static readonly byte[] Buffer = new byte[4 << 20];

    public static JobStatus Status { get; set; } = new();

    /// <summary>What ListJobs returns: a prepared page (or, for the page token "blob", <see cref="Blob"/>).</summary>
    public static ListJobsResponse Page { get; set; } = new();

    /// <summary>As many bytes as <see cref="Page"/> in one string field: the bytes without the entries' messages.</summary>
    public static ListJobsResponse Blob { get; set; } = new();

    public override Task<GetJobResponse> GetJob(GetJobRequest request, ServerCallContext context)
        => Task.FromResult(new GetJobResponse { Job = Status });

    public override Task<ListJobsResponse> ListJobs(ListJobsRequest request, ServerCallContext context)
        => Task.FromResult(request.PageToken == "blob" ? Blob : Page);

    public override async Task StreamOutput(StreamOutputRequest request, IServerStreamWriter<StreamOutputResponse> responseStream, ServerCallContext context)
    {
        var total = long.Parse(context.RequestHeaders.GetValue("x-bytes")!, System.Globalization.CultureInfo.InvariantCulture);
        var chunk = int.Parse(context.RequestHeaders.GetValue("x-chunk")!, System.Globalization.CultureInfo.InvariantCulture);
        for (long offset = 0; offset < total; offset += chunk)
        {
            var length = (int)Math.Min(chunk, total - offset);
            await responseStream.WriteAsync(new StreamOutputResponse
            {
                Chunk = new OutputChunk { Offset = offset, Data = UnsafeByteOperations.UnsafeWrap(Buffer.AsMemory(0, length)) },
            }, context.CancellationToken);
        }

        await responseStream.WriteAsync(new StreamOutputResponse { FinalStatus = Status }, context.CancellationToken);
    }
}
