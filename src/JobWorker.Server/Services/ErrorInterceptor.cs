using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using JobWorker.Core.Jobs;
using JobWorker.Server.Diagnostics;
using JobWorker.Server.Errors;
using JobWorker.Server.Security;

namespace JobWorker.Server.Services;

/// <summary>
/// The one place where exceptions become gRPC status codes, for every service. Known errors keep their message
/// (written for clients: it names the field or the reason); anything unexpected becomes Internal with an error id
/// that points into the server log, never the exception's text. Also refuses requests with unknown fields.
/// </summary>
public sealed class ErrorInterceptor : Interceptor
{
    private readonly ILogger<ErrorInterceptor> _logger;
    private readonly ServerMetrics _metrics;

    public ErrorInterceptor(ILogger<ErrorInterceptor> logger, ServerMetrics metrics)
    {
        _logger = logger;
        _metrics = metrics;
    }

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            CheckUnknownFields(request);
            return await continuation(request, context);
        }
        catch (Exception e)
        {
            throw Translate(e, context);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            CheckUnknownFields(request);
            await continuation(request, responseStream, context);
        }
        catch (Exception e)
        {
            throw Translate(e, context);
        }
    }

    /// <summary>The status a given exception answers with (the mapping table).</summary>
    public static Status ToStatus(Exception exception, bool callCancelled)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception switch
        {
            RpcException rpc => rpc.Status,
            InvalidRequestException => new(StatusCode.InvalidArgument, exception.Message),
            JobNotFoundException => new(StatusCode.NotFound, exception.Message),
            UnauthenticatedException => new(StatusCode.Unauthenticated, exception.Message),
            RunningJobLimitException => new(StatusCode.ResourceExhausted, exception.Message),
            QuotaExceededException => new(StatusCode.ResourceExhausted, exception.Message),
            JobStillRunningException => new(StatusCode.FailedPrecondition, exception.Message),
            RequestIdReusedException => new(StatusCode.AlreadyExists, exception.Message),
            CgroupControllerUnavailableException => new(StatusCode.FailedPrecondition, exception.Message),
            ServerShuttingDownException => new(StatusCode.Unavailable, exception.Message),
            JobStartException start => start.Reason switch
            {
                // The request named something that cannot be run as asked: the client can fix it.
                JobStartFailure.ExecutableNotFound or JobStartFailure.PermissionDenied or JobStartFailure.NotExecutable
                    or JobStartFailure.BadWorkingDirectory => new(StatusCode.FailedPrecondition, start.Message),
                // The machine is out of processes or memory for now.
                JobStartFailure.SpawnFailed => new(StatusCode.ResourceExhausted, start.Message),
                // Every id of the range is someone's: the message names the range and the fix (for the operator).
                JobStartFailure.UserIdsExhausted => new(StatusCode.ResourceExhausted, start.Message),
                // Server-side setup (job user, cgroups, namespaces): the client cannot fix it.
                _ => new(StatusCode.Internal, $"the server could not set up the job ({start.Reason}); details are in the server log"),
            },
            // The client went away or gave up: writes then fail with any of these. Nobody reads the status.
            OperationCanceledException or IOException or InvalidOperationException when callCancelled
                => new(StatusCode.Cancelled, "the call was cancelled"),
            _ => new(StatusCode.Internal, "internal error"),
        };
    }

    private static void CheckUnknownFields<TRequest>(TRequest request)
    {
        if (request is IMessage message && UnknownFields.Find(message) is { } unknown)
        {
            throw new InvalidRequestException(unknown.Split(':')[0], unknown[(unknown.IndexOf(':', StringComparison.Ordinal) + 2)..] + " (this server does not know it; is the client newer?)");
        }
    }

    private RpcException Translate(Exception exception, ServerCallContext context)
    {
        var cancelled = context.CancellationToken.IsCancellationRequested;
        var status = ToStatus(exception, cancelled);
        _metrics.Error(status.StatusCode);
        var user = TryGetUser(context);
        if (status.StatusCode == StatusCode.Internal && exception is not RpcException)
        {
            // Clients get an id to quote; the log gets the exception.
            var errorId = Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant();
            Log.UnexpectedError(_logger, exception, user, context.Method, errorId);
            status = new Status(StatusCode.Internal, $"{status.Detail} (error id {errorId})");
        }
        else if (status.StatusCode != StatusCode.Cancelled)
        {
            Log.CallFailed(_logger, user, context.Method, status.StatusCode.ToString(), status.Detail);
        }

        return exception as RpcException ?? new RpcException(status);
    }

    private static string TryGetUser(ServerCallContext context)
    {
        try
        {
            return CallerIdentity.Get(context).User;
        }
        catch (UnauthenticatedException)
        {
            return "(unauthenticated)";
        }
    }
}
