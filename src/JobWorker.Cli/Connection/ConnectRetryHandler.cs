using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Authentication;
using JobWorker.Cli.Formatting;

namespace JobWorker.Cli.Connection;

/// <summary>
/// The channel's HTTP handler: sends each request through a <see cref="SocketsHttpHandler"/> and, when the
/// connection could not be set up, tries again with backoff until the connect timeout is spent.
/// </summary>
/// <remarks>
/// Only failures to establish the connection (TCP connect, TLS handshake) are retried. HTTP/2 sends nothing of a
/// request before its connection is up, so such a request never reached the server and any call, even StartJob,
/// is safe to send again. A failure once the connection is up is never retried here.
///
/// Each attempt runs in a handler whose connect timeout is what is left of the budget, so the whole set-up,
/// retries included, ends within the connect timeout. SocketsHttpHandler's timeout cannot change once it is in
/// use, hence one handler per attempt; a handler that failed to connect holds no connection, and all are
/// disposed with this one.
///
/// "Connection refused" is retried only when this process has already reached the server (it is restarting):
/// on a first contact it means nothing listens there, and the user should hear that at once.
///
/// When the client's certificate files have been renewed since the current handler was made, a request gets a new
/// handler presenting the new pair: the server closes connections whose certificate has expired, and a follower's
/// reconnection must not present the expired one again. Calls already open go on over their connection.
/// </remarks>
internal sealed class ConnectRetryHandler : HttpMessageHandler
{
    private static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan MinAttempt = TimeSpan.FromMilliseconds(100);

    private readonly Uri _server;
    private readonly TimeSpan _budget;
    private readonly Func<TimeSpan, HttpMessageHandler> _createHandler;
    private readonly Func<bool> _credentialsRenewed;
    private readonly Lock _lock = new();
    private readonly List<HttpMessageInvoker> _invokers = [];
    private HttpMessageInvoker _current;
    private volatile bool _reachedServer;

    /// <param name="server">The server, for messages.</param>
    /// <param name="budget">The connect timeout: how long one connection set-up may take, retries included.</param>
    /// <param name="createHandler">Creates a handler whose connect timeout is the given time.</param>
    /// <param name="credentialsRenewed">Whether the client certificate changed since the last handler was made
    /// (checked before each request; <paramref name="createHandler"/> then presents the new one).</param>
    public ConnectRetryHandler(Uri server, TimeSpan budget, Func<TimeSpan, HttpMessageHandler> createHandler, Func<bool>? credentialsRenewed = null)
    {
        _server = server;
        _budget = budget;
        _createHandler = createHandler;
        _credentialsRenewed = credentialsRenewed ?? (() => false);
        _current = Add(budget);
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var delay = FirstDelay;
        if (_credentialsRenewed())
        {
            lock (_lock)
            {
                _current = Add(_budget);
            }
        }

        for (var attempt = 1; ; attempt++)
        {
            HttpMessageInvoker invoker;
            lock (_lock)
            {
                invoker = _current;
            }

            try
            {
                var response = await invoker.SendAsync(request, cancellationToken).ConfigureAwait(false);
                _reachedServer = true;
                return response;
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested && Classify(ex) is var kind && kind != FailureKind.Other)
            {
                if (kind == FailureKind.Refused && !_reachedServer)
                {
                    throw;
                }

                // The last attempt gets whatever is left, so the set-up ends when the connect timeout does.
                var elapsed = Stopwatch.GetElapsedTime(started);
                var remaining = _budget - elapsed;
                if (remaining < MinAttempt)
                {
                    throw GiveUp(kind, attempt, ex);
                }

                var wait = delay * (0.5 + (Random.Shared.NextDouble() / 2));
                if (wait > remaining - MinAttempt)
                {
                    wait = remaining - MinAttempt;
                }

                lock (_lock)
                {
                    if (_current == invoker)
                    {
                        _current = Add(remaining - wait);
                    }
                }

                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
                delay = delay * 2 > MaxDelay ? MaxDelay : delay * 2;
            }
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            lock (_lock)
            {
                foreach (var invoker in _invokers)
                {
                    invoker.Dispose();
                }

                _invokers.Clear();
            }
        }

        base.Dispose(disposing);
    }

    private HttpMessageInvoker Add(TimeSpan connectTimeout)
    {
        var invoker = new HttpMessageInvoker(_createHandler(connectTimeout), disposeHandler: true);
        _invokers.Add(invoker);
        return invoker;
    }

    private ServerUnreachableException GiveUp(FailureKind kind, int attempts, Exception last)
    {
        var server = _server.ToString().TrimEnd('/');
        var within = $"within the client's connect timeout of {HumanFormat.Duration(_budget)}";
        var tries = attempts == 1 ? "1 attempt" : $"{attempts} attempts";
        return kind == FailureKind.TimedOut
            ? new ServerUnreachableException(
                $"timed out connecting to {server}: no TLS connection {within} ({tries}). The server or this machine may be "
                + "overloaded, or the address is wrong; wait longer with --connect-timeout or WORKER_CONNECT_TIMEOUT",
                last)
            : new ServerUnreachableException(
                $"cannot connect to {server}: {Reason(kind, last)}; gave up after {tries} {within} (--connect-timeout or WORKER_CONNECT_TIMEOUT)",
                last);
    }

    private static string Reason(FailureKind kind, Exception last) => kind switch
    {
        FailureKind.Refused => "connection refused (the server is not running, or restarting)",
        FailureKind.Tls => $"the connection ended during the TLS handshake ({Innermost(last)})",
        _ => $"the connection failed while being set up ({Innermost(last)})",
    };

    private static string Innermost(Exception exception)
    {
        var e = exception;
        while (e.InnerException is not null)
        {
            e = e.InnerException;
        }

        return e.Message.Split('\n')[0].Trim().TrimEnd('.');
    }

    private static FailureKind Classify(Exception exception)
    {
        var chain = new List<Exception>();
        for (var e = exception; e is not null; e = e.InnerException)
        {
            chain.Add(e);
        }

        // SocketsHttpHandler reports its connect timeout as a cancellation caused by a TimeoutException.
        if (exception is OperationCanceledException)
        {
            return chain.OfType<TimeoutException>().Any() ? FailureKind.TimedOut : FailureKind.Other;
        }

        // SocketsHttpHandler lets a SocketException from reading the new socket's address escape unwrapped: a
        // connection reset right after the TCP connect.
        if (exception is SocketException direct)
        {
            return OfSocket(direct);
        }

        if (exception is not HttpRequestException http)
        {
            return FailureKind.Other;
        }

        switch (http.HttpRequestError)
        {
            case HttpRequestError.ConnectionError:
                return OfSocket(chain.OfType<SocketException>().FirstOrDefault());

            // An AuthenticationException is a verdict (untrusted certificate, protocol): trying again cannot help.
            // Anything else is the connection ending mid-handshake, e.g. the server's handshake timeout under load.
            case HttpRequestError.SecureConnectionError when !chain.OfType<AuthenticationException>().Any():
                return FailureKind.Tls;
            default:
                return FailureKind.Other;
        }

        static FailureKind OfSocket(SocketException? socket) => socket?.SocketErrorCode switch
        {
            SocketError.ConnectionRefused => FailureKind.Refused,

            // Reset or dropped while being set up (NotConnected: the reset came before the socket was used),
            // or out of ports or buffers for a moment under a burst of connections.
            SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.NotConnected or SocketError.Shutdown
                or SocketError.TimedOut or SocketError.TryAgain or SocketError.NoBufferSpaceAvailable or SocketError.AddressNotAvailable
                => FailureKind.Transient,
            _ => FailureKind.Other,
        };
    }

    private enum FailureKind
    {
        Other,
        Refused,
        Transient,
        Tls,
        TimedOut,
    }
}
