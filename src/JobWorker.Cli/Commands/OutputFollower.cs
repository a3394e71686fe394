using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Security.Authentication;
using Grpc.Core;
using JobWorker.Cli.Connection;
using JobWorker.Cli.Formatting;
using JobWorker.Cli.Infrastructure;
using JobWorker.Protocol.V1;
using JobWorkerClient = JobWorker.Protocol.V1.JobWorker.JobWorkerClient;

namespace JobWorker.Cli.Commands;

/// <summary>
/// Copies a job's output stream to a byte stream (our stdout) without decoding it. A followed stream that breaks
/// because the server went away (restart, upgrade, crash, network) is reopened at the next byte not yet written,
/// so nothing is lost or repeated, for up to the reconnect timeout (<see cref="ConnectionSettings.ReconnectTimeout"/>).
/// </summary>
/// <remarks>
/// Jobs outlive the server, so a follower only has to wait for a new one. While it waits it says so on stderr
/// (stdout carries the job's bytes only), and when the server is back it says so again. Each attempt first asks
/// for the job's status: a server that answers is back (an idle job's stream would send nothing to prove it), and
/// a server that does not know the job ends the wait at once. The reconnect timeout bounds one outage: it starts
/// when the stream breaks and starts again only once a reopened stream has delivered output or stayed up for
/// <see cref="Settled"/>, so a server that answers but keeps cutting the stream cannot hold a follower forever. A
/// first stream that fails before the server took it (no response headers: nothing listens there, the client
/// certificate is refused) is no outage but the error any other command would report.
/// </remarks>
internal sealed class OutputFollower(JobWorkerClient client, ConnectionSettings settings, CliContext context, string verb)
{
    private static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Settled = TimeSpan.FromSeconds(5);

    /// <param name="request">The first request; a resumed one asks for the next byte by offset, never for a tail.</param>
    /// <param name="destination">Our stdout.</param>
    /// <param name="serverAnswered">This command has already had an answer from the server (run: StartJob), so a
    /// failure of even the first stream is the server going away, not a server that was never there.</param>
    /// <param name="cancellationToken">A signal: ends the copy, and any wait for the server, at once.</param>
    /// <returns>The job's final status when the server sent it (the job has ended), else null.</returns>
    /// <exception cref="CliException">The server was not back within the reconnect timeout (<see cref="ExitCodes.ServerLost"/>),
    /// or came back without the job.</exception>
    public async Task<JobStatus?> CopyAsync(StreamOutputRequest request, Stream destination, bool serverAnswered, CancellationToken cancellationToken)
    {
        var jobId = request.JobId;
        var nextOffset = request.FromOffset;
        if (request.Follow && request.StartCase == StreamOutputRequest.StartOneofCase.TailLines)
        {
            // Where a tail starts only its first chunk tells. Should the stream break before that chunk arrives,
            // the follower resumes where the log ended before the tail was asked for: nothing written since is missed.
            nextOffset = (await client.GetJobAsync(new GetJobRequest { JobId = jobId }, cancellationToken: cancellationToken)).Job.LogBytes;
            serverAnswered = true;
        }

        long? outageStarted = null;
        var delay = FirstDelay;
        while (true)
        {
            var opened = Stopwatch.GetTimestamp();
            var received = false;
            Exception? cause = null;
            using var call = client.StreamOutput(request, cancellationToken: cancellationToken);
            try
            {
                await foreach (var message in call.ResponseStream.ReadAllAsync(cancellationToken))
                {
                    received = true;
                    switch (message.KindCase)
                    {
                        case StreamOutputResponse.KindOneofCase.Chunk:
                            var data = message.Chunk.Data;
                            if (message.Chunk.TailBounded)
                            {
                                context.Notify(verb, $"fewer lines than asked: the server looks back at most 1 MiB for --tail, so the output starts at byte {message.Chunk.Offset}. Use --from-offset 0 for all of it");
                            }

                            if (data.Length > 0)
                            {
                                destination.Write(data.Span);
                                nextOffset = message.Chunk.Offset + data.Length;
                            }

                            break;
                        case StreamOutputResponse.KindOneofCase.FinalStatus:
                            return message.FinalStatus;
                    }
                }

                // A followed stream ends with the final status; without it, the server ended the call as it went away.
                if (!request.Follow)
                {
                    return null;
                }
            }
            catch (RpcException ex) when (request.Follow && IsServerGone(ex, cancellationToken) && (serverAnswered || received || HasHeaders(call)))
            {
                // A stream that never came up was already retried for the connect timeout (a server that is not
                // there, or refuses this client): that is final, and its own error says why.
                cause = ex;
            }

            serverAnswered = true;

            if (outageStarted is null || received || Stopwatch.GetElapsedTime(opened) >= Settled)
            {
                outageStarted = Stopwatch.GetTimestamp();
                delay = FirstDelay;
            }

            delay = await ReconnectAsync(jobId, nextOffset, outageStarted.Value, delay, cause, cancellationToken);
            request = new StreamOutputRequest { JobId = jobId, Follow = true, FromOffset = nextOffset };
        }
    }

    /// <summary>Waits until the server answers for the job again.</summary>
    /// <returns>The backoff delay to go on with, should the reopened stream break at once.</returns>
    private async Task<TimeSpan> ReconnectAsync(string jobId, long offset, long outageStarted, TimeSpan delay, Exception? cause, CancellationToken cancellationToken)
    {
        var remaining = settings.ReconnectTimeout - Stopwatch.GetElapsedTime(outageStarted);
        if (remaining <= TimeSpan.Zero)
        {
            throw GiveUp(jobId, offset, cause);
        }

        context.Notify(verb, $"lost the connection to {settings.ServerText}; reconnecting for up to {Seconds(remaining)}", cause);
        while (true)
        {
            var wait = delay * (0.5 + (Random.Shared.NextDouble() / 2));
            remaining = settings.ReconnectTimeout - Stopwatch.GetElapsedTime(outageStarted);
            if (wait >= remaining)
            {
                throw GiveUp(jobId, offset, cause);
            }

            await Task.Delay(wait, cancellationToken);
            delay = delay * 2 > MaxDelay ? MaxDelay : delay * 2;

            // Each attempt may use what is left of the outage's time (connection set-up retries included), no more.
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            attempt.CancelAfter(settings.ReconnectTimeout - Stopwatch.GetElapsedTime(outageStarted));
            try
            {
                await client.GetJobAsync(new GetJobRequest { JobId = jobId }, cancellationToken: attempt.Token);
                context.Notify(verb, $"reconnected to {settings.ServerText}; resuming job {jobId} at byte {offset}");
                return delay;
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested
                && (attempt.IsCancellationRequested || (ex is RpcException rpc && IsServerGone(rpc, cancellationToken))))
            {
                cause = ex;
            }
            catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
            {
                // A verdict, not an outage: the job is not there (another server, another state directory), a refused certificate.
                throw new CliException($"lost the connection to {settings.ServerText} and could not resume: {ErrorReporter.Describe(ex, settings)}", ErrorReporter.ExitCodeOf(ex), ex);
            }
        }
    }

    private CliException GiveUp(string jobId, long offset, Exception? cause)
    {
        var why = settings.ReconnectTimeout > TimeSpan.Zero
            ? $"it was not back within the reconnect timeout of {Seconds(settings.ReconnectTimeout)} (--reconnect-timeout or WORKER_RECONNECT_TIMEOUT)"
            : "reconnecting is off (--reconnect-timeout 0)";
        var message = $"lost the connection to the server at {settings.ServerText} while following job {jobId}, and {why}. "
            + $"The job may still be running: resume with 'worker logs -f --from-offset {offset} {jobId}'";
        return cause is null ? new CliException(message, ExitCodes.ServerLost) : new CliException(message, ExitCodes.ServerLost, cause);
    }

    /// <summary>Whether the server took the call (it sends a follower its response headers at once).</summary>
    private static bool HasHeaders(AsyncServerStreamingCall<StreamOutputResponse> call)
    {
        var headers = call.ResponseHeadersAsync;
        if (headers.IsFaulted)
        {
            _ = headers.Exception; // observed: the call's own exception says what went wrong
        }

        return headers.IsCompletedSuccessfully;
    }

    /// <summary>"60s", "90s", "1h00m": whole seconds (rounded up) under ten minutes, as the user is likely to have written them.</summary>
    private static string Seconds(TimeSpan duration)
        => duration < TimeSpan.FromMinutes(10) ? $"{Math.Ceiling(duration.TotalSeconds).ToString(CultureInfo.InvariantCulture)}s" : HumanFormat.Duration(duration);

    /// <summary>Whether a call failed because the server went away (stopped, restarting, unreachable), not with a verdict.</summary>
    private static bool IsServerGone(RpcException ex, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return false;
        }

        var chain = new List<Exception>();
        for (var e = ex.Status.DebugException; e is not null; e = e.InnerException)
        {
            chain.Add(e);
        }

        // An untrusted certificate or protocol is a verdict that waiting cannot change.
        if (chain.OfType<AuthenticationException>().Any())
        {
            return false;
        }

        // "The server is shutting down", a connection refused, reset or closed: all Unavailable. An HTTP/2 stream or
        // connection torn down under the call may surface as another code made up on this side (it then carries the
        // transport exception); a status the server itself sent carries none.
        return ex.StatusCode switch
        {
            StatusCode.Unavailable => true,
            StatusCode.Internal or StatusCode.Unknown or StatusCode.Cancelled
                => chain.Any(e => e is IOException or HttpRequestException or HttpProtocolException or SocketException),
            _ => false,
        };
    }
}
