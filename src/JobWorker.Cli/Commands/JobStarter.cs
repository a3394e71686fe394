using System.Diagnostics;
using Grpc.Core;
using JobWorker.Cli.Connection;
using JobWorker.Cli.Infrastructure;
using JobWorker.Protocol.V1;
using JobWorkerClient = JobWorker.Protocol.V1.JobWorker.JobWorkerClient;

namespace JobWorker.Cli.Commands;

/// <summary>
/// StartJob for <c>start</c> and <c>run</c>, so that no job runs without the user knowing its id.
/// </summary>
/// <remarks>
/// Each command sends a random request id (the server's idempotency key), so asking again can never start the
/// program twice: a call that failed with Unavailable once it may have been sent is repeated, with the same id,
/// within the connect timeout. A signal does not cancel the call at once: the spawn may already be under way on
/// the server, and cancelling would leave a job nobody knows about. The answer is awaited for
/// <see cref="AnswerWaitAfterSignal"/> more, so the caller can report the job's id and stop it.
/// </remarks>
internal static class JobStarter
{
    public static readonly TimeSpan AnswerWaitAfterSignal = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(2);

    /// <returns>The started job's status.</returns>
    /// <exception cref="CliException">Interrupted, and the server did not answer within <see cref="AnswerWaitAfterSignal"/>.</exception>
    public static async Task<JobStatus> StartAsync(JobWorkerClient client, StartJobRequest request, ConnectionSettings settings, CliContext context, CancellationToken signal)
    {
        if (string.IsNullOrEmpty(request.RequestId))
        {
            request.RequestId = Guid.NewGuid().ToString("D");
        }

        // Interrupted before anything was sent: nothing to start, nothing to stop.
        signal.ThrowIfCancellationRequested();
        using var patience = new CancellationTokenSource();
        using var registration = signal.Register(() => patience.CancelAfter(AnswerWaitAfterSignal));
        var started = Stopwatch.GetTimestamp();
        var delay = FirstDelay;
        while (true)
        {
            try
            {
                return (await client.StartJobAsync(request, cancellationToken: patience.Token)).Job;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable && ex.Status.DebugException is not ServerUnreachableException
                && !patience.IsCancellationRequested && settings.ConnectTimeout - Stopwatch.GetElapsedTime(started) > delay)
            {
                // Lost on the way (connection cut, server restarting): the same request id makes asking again safe.
            }
            catch (Exception ex) when (patience.IsCancellationRequested && (ex is OperationCanceledException || ex is RpcException { StatusCode: StatusCode.Cancelled }))
            {
                throw Unanswered(request, settings, context, ex);
            }

            try
            {
                await Task.Delay(delay, patience.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex)
            {
                throw Unanswered(request, settings, context, ex);
            }

            delay = delay * 2 > MaxDelay ? MaxDelay : delay * 2;
        }
    }

    private static CliException Unanswered(StartJobRequest request, ConnectionSettings settings, CliContext context, Exception cause)
        => new(
            $"interrupted, and the server at {settings.Server.ToString().TrimEnd('/')} did not answer the start within {AnswerWaitAfterSignal.TotalSeconds:0}s: "
            + $"the job may have started (request id {request.RequestId}); look for it with 'worker list'",
            context.SignalExitCode ?? ExitCodes.SigInt,
            cause);
}
