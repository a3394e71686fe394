using Grpc.Core;
using JobWorker.Cli.Connection;
using JobWorker.Protocol.V1;
using JobWorkerClient = JobWorker.Protocol.V1.JobWorker.JobWorkerClient;

namespace JobWorker.Cli.Commands;

/// <summary>
/// Copies a job's output stream to a byte stream (our stdout) without decoding it. When a followed stream
/// breaks (server restart, network), it resumes from the next byte's offset, so nothing is lost or repeated.
/// </summary>
internal static class OutputFollower
{
    private const int MaxResumes = 3;

    /// <returns>The job's final status when the server sent it (the job has ended), else null.</returns>
    public static async Task<JobStatus?> CopyAsync(JobWorkerClient client, StreamOutputRequest request, Stream destination, CancellationToken cancellationToken)
    {
        var nextOffset = request.StartCase == StreamOutputRequest.StartOneofCase.FromOffset ? request.FromOffset : -1;
        var resumes = 0;
        while (true)
        {
            var progressed = false;
            try
            {
                using var call = client.StreamOutput(request, cancellationToken: cancellationToken);
                await foreach (var message in call.ResponseStream.ReadAllAsync(cancellationToken))
                {
                    switch (message.KindCase)
                    {
                        case StreamOutputResponse.KindOneofCase.Chunk:
                            var data = message.Chunk.Data;
                            if (data.Length > 0)
                            {
                                destination.Write(data.Span);
                                nextOffset = message.Chunk.Offset + data.Length;
                                progressed = true;
                            }

                            break;
                        case StreamOutputResponse.KindOneofCase.FinalStatus:
                            return message.FinalStatus;
                    }
                }

                return null;
            }
            catch (RpcException ex) when (request.Follow && ex.StatusCode == StatusCode.Unavailable && nextOffset >= 0
                && !cancellationToken.IsCancellationRequested && (progressed || resumes == 0) && resumes < MaxResumes
                && ex.Status.DebugException is not ServerUnreachableException)
            {
                // Resume after the last byte written; a retry that makes no progress ends the loop. A connection that
                // could not be set up was already retried for the whole connect timeout: that is final.
                resumes++;
                request = new StreamOutputRequest { JobId = request.JobId, Follow = true, FromOffset = nextOffset };
            }
        }
    }
}
