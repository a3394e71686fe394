using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using JobWorker.Core.Diagnostics;
using JobWorker.Core.Jobs;
using JobWorker.Pki;
using JobWorker.Protocol.V1;
using JobWorker.Server.Diagnostics;
using JobWorker.Server.Errors;
using JobWorker.Server.Hosting;
using JobWorker.Server.RateLimiting;
using JobWorker.Server.Security;
using Microsoft.AspNetCore.RateLimiting;
using Proto = JobWorker.Protocol.V1;

namespace JobWorker.Server.Services;

/// <summary>
/// The gRPC API. Each call: who is calling (the certificate), may they (the policy table), is the request valid,
/// then one call into the <see cref="JobRunner"/>. Errors are exceptions; <see cref="ErrorInterceptor"/> maps them
/// to status codes.
/// </summary>
public sealed class JobWorkerService : Proto.JobWorker.JobWorkerBase
{
    private readonly JobRunnerHost _host;
    private readonly RequestValidator _validator;
    private readonly StartRequestRegistry _requests;
    private readonly JobLimitPolicy _limits;
    private readonly ServerMetrics _metrics;
    private readonly ILogger<JobWorkerService> _logger;

    public JobWorkerService(JobRunnerHost host, RequestValidator validator, StartRequestRegistry requests, JobLimitPolicy limits, ServerMetrics metrics, ILogger<JobWorkerService> logger)
    {
        _host = host;
        _validator = validator;
        _limits = limits;
        _requests = requests;
        _metrics = metrics;
        _logger = logger;
    }

    [EnableRateLimiting(RateLimits.StartJobPolicy)]
    public override async Task<StartJobResponse> StartJob(StartJobRequest request, ServerCallContext context)
    {
        // Null when nobody listens (no OTLP endpoint): then tracing costs one check per span.
        using var activity = ServerTelemetry.Source.StartActivity(ServerTelemetry.StartJobActivityName);
        try
        {
            return await StartJob(request, context, activity);
        }
        catch (Exception e) when (ServerTelemetry.Failed(activity, e))
        {
            throw;
        }
    }

    private async Task<StartJobResponse> StartJob(StartJobRequest request, ServerCallContext context, Activity? activity)
    {
        var caller = CallerIdentity.Get(context);
        activity?.SetTag(ServerTelemetry.UserTag, caller.User);
        JobSpec spec;
        string? requestId;
        using (var validate = ServerTelemetry.Source.StartActivity(ServerTelemetry.ValidateActivityName))
        {
            try
            {
                if (!AuthorizationPolicy.IsAllowed(caller, JobOperation.Start, jobOwner: null))
                {
                    throw new RpcException(new Status(StatusCode.PermissionDenied, $"role '{caller.Role}' may not start jobs"));
                }

                // The limits after the caller's defaults are what the job runs with, what is recorded and what GetJob reports.
                spec = _limits.Apply(_validator.ToSpec(request, caller.User), caller);
                requestId = RequestValidator.ParseRequestId(request.RequestId);
            }
            catch (Exception e) when (ServerTelemetry.Failed(validate, e))
            {
                throw;
            }
        }

        // The call's token is cancelled when the client goes away or its deadline passes: checked up to the spawn.
        var cancellationToken = context.CancellationToken;
        Job job;
        if (requestId is null)
        {
            job = _host.Start(spec, caller, cancellationToken: cancellationToken);
        }
        else
        {
            var (started, repeated) = await _requests.StartOnceAsync(caller.User, requestId, request, fingerprint => _host.Start(spec, caller, (requestId, fingerprint), cancellationToken), cancellationToken);
            job = started;
            activity?.SetTag(ServerTelemetry.RepeatedTag, repeated);
            if (repeated)
            {
                if (!_host.Runner.TryGetJob(job.Id, out _))
                {
                    throw new JobNotFoundException($"request_id '{requestId}' started job {RequestValidator.FormatJobId(job.Id)}, which has since been removed");
                }

                Log.JobStartRepeated(_logger, caller.User, job.Id, requestId);
                return new StartJobResponse { Job = StatusMapper.ToProto(job) };
            }
        }

        activity?.SetTag(JobTracing.JobIdTag, RequestValidator.FormatJobId(job.Id));
        var status = job.Status;
        Log.JobStarted(_logger, caller.User, job.Id, spec.Command, status.Pid);
        return new StartJobResponse { Job = StatusMapper.ToProto(job, status) };
    }

    public override async Task<StopJobResponse> StopJob(StopJobRequest request, ServerCallContext context)
    {
        using var activity = ServerTelemetry.Source.StartActivity(ServerTelemetry.StopJobActivityName);
        try
        {
            var caller = CallerIdentity.Get(context);
            activity?.SetTag(ServerTelemetry.UserTag, caller.User);
            activity?.SetTag(JobTracing.JobIdTag, request.JobId);
            var job = FindJob(caller, request.JobId, JobOperation.Stop);
            var grace = _validator.ToGrace(request.Grace);
            var status = await job.StopAsync(grace, context.CancellationToken);
            activity?.SetTag(ServerTelemetry.StateTag, status.State.ToString());
            Log.JobStopped(_logger, caller.User, job.Id, status.State.ToString());
            return new StopJobResponse { Job = StatusMapper.ToProto(job, status) };
        }
        catch (Exception e) when (ServerTelemetry.Failed(activity, e))
        {
            throw;
        }
    }

    public override Task<GetJobResponse> GetJob(GetJobRequest request, ServerCallContext context)
    {
        var caller = CallerIdentity.Get(context);
        var job = FindJob(caller, request.JobId, JobOperation.Get);
        return Task.FromResult(new GetJobResponse { Job = StatusMapper.ToProto(job) });
    }

    [EnableRateLimiting(RateLimits.OutputStreamPolicy)]
    public override async Task StreamOutput(StreamOutputRequest request, IServerStreamWriter<StreamOutputResponse> responseStream, ServerCallContext context)
    {
        var caller = CallerIdentity.Get(context);
        var job = FindJob(caller, request.JobId, JobOperation.StreamOutput);
        var options = RequestValidator.ToReadOptions(request);
        var cancellationToken = context.CancellationToken;

        if (options.Follow)
        {
            // Tells the follower at once that its stream was taken: a break after this is the server going away, which
            // a follower rides out by reconnecting, not a connection that never came up. An idle job sends nothing.
            await context.WriteResponseHeadersAsync(new Metadata());
        }

        using var registration = _host.OpenStream();
        _metrics.StreamOpened();
        Log.StreamOpened(_logger, caller.User, job.Id, options.Follow);
        long sent = 0;

        // Without follow the read ends where the log ended when the reader looked; the final status may only follow
        // if that was the end of the complete log. A tail read starts no later than the log's length now.
        long readStart = options.TailLines is null ? options.FromOffset : job.Status.LogBytes;
        long? readEnd = null;
        try
        {
            // One loop: each chunk the reader yields is written before the next is read. A cancelled call
            // (client gone, deadline) cancels the enumeration, which releases the reader at once.
            await foreach (var chunk in job.ReadOutputAsync(options, cancellationToken))
            {
                // UnsafeWrap avoids copying: the chunk's memory is valid until the enumerator moves on, and
                // WriteAsync has serialized the message into the HTTP/2 pipe by the time it completes.
                var message = new StreamOutputResponse
                {
                    Chunk = new Proto.OutputChunk { Offset = chunk.Offset, Data = UnsafeByteOperations.UnsafeWrap(chunk.Data), TailBounded = chunk.TailBounded },
                };
                await responseStream.WriteAsync(message, cancellationToken);
                sent += chunk.Data.Length;
                readEnd = chunk.Offset + chunk.Data.Length;
                _metrics.BytesStreamed(chunk.Data.Length);
            }

            // The reader ended: with follow, because the job ended and every byte was read. Say how it ended —
            // but only when the client now has the whole log (the final status means "that was all").
            var status = job.Status;
            if (EndsTheLog(options.Follow, readStart, readEnd, status))
            {
                await responseStream.WriteAsync(new StreamOutputResponse { FinalStatus = StatusMapper.ToProto(job, status) }, cancellationToken);
            }
        }
        catch (ObjectDisposedException e)
        {
            // The log was closed under the reader: the job was removed, or the server is shutting down.
            throw _host.IsStopping
                ? new ServerShuttingDownException("the server is shutting down", e)
                : new JobNotFoundException($"job {RequestValidator.FormatJobId(job.Id)} was removed while its output was being read", e);
        }
        finally
        {
            _metrics.StreamClosed();
            Log.StreamClosed(_logger, caller.User, job.Id, sent);
        }
    }

    /// <summary>
    /// Whether a read that started at <paramref name="readStart"/> and sent bytes up to <paramref name="readEnd"/>
    /// (<see langword="null"/>: none) gave the client the whole log of a job with <paramref name="status"/>.
    /// </summary>
    /// <remarks>
    /// A follower ends only after the last byte of an ended job. A read without follow ends where the log ended when
    /// the reader looked, and the job may have written more and ended since: compare with where the read ended, or
    /// started when it read nothing.
    /// </remarks>
    internal static bool EndsTheLog(bool follow, long readStart, long? readEnd, Core.Jobs.JobStatus status)
        => status.HasEnded && (follow || (readEnd ?? readStart) >= status.LogBytes);

    public override Task<RemoveJobResponse> RemoveJob(RemoveJobRequest request, ServerCallContext context)
    {
        var caller = CallerIdentity.Get(context);
        var job = FindJob(caller, request.JobId, JobOperation.Remove);
        try
        {
            // The runner alone decides whether the job has ended (its final status is published), so a client
            // that received the final status is never told the job still runs.
            _host.Remove(job);
        }
        catch (InvalidOperationException e)
        {
            throw new JobStillRunningException($"job {RequestValidator.FormatJobId(job.Id)} is still running; stop it first", e);
        }

        Log.JobRemoved(_logger, caller.User, job.Id);
        return Task.FromResult(new RemoveJobResponse());
    }

    /// <summary>
    /// Finds a job the caller may act on. A job the caller may not see answers exactly like a missing one: the
    /// same exception with the same message, so NotFound never confirms that someone else's job exists.
    /// </summary>
    private Job FindJob(ClientIdentity caller, string jobId, JobOperation operation)
    {
        var id = RequestValidator.ParseJobId(jobId);
        if (_host.Runner.TryGetJob(id, out var job))
        {
            if (AuthorizationPolicy.IsAllowed(caller, operation, job.Spec.Owner))
            {
                return job;
            }

            Log.AccessDenied(_logger, caller.User, caller.Role, operation.ToString(), id, job.Spec.Owner);
        }

        throw new JobNotFoundException($"job {RequestValidator.FormatJobId(id)} not found");
    }
}
