using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using JobWorker.Cli.Connection;

namespace JobWorker.Cli.Infrastructure;

/// <summary>
/// Turns a failure into one line for stderr that says what failed and what to do. Stack traces are
/// never shown; WORKER_DEBUG=1 prints the full exception after the line for bug reports.
/// </summary>
internal static class ErrorReporter
{
    public static string Describe(Exception exception, ConnectionSettings? settings)
    {
        var server = settings?.Server.ToString().TrimEnd('/') ?? "the server";
        return exception switch
        {
            CliException cli => cli.Message,
            RpcException rpc => DescribeRpc(rpc, server, settings),
            _ => $"unexpected error: {exception.Message}",
        };
    }

    /// <summary>
    /// The exit code of a failure: <see cref="ExitCodes.NotFound"/>, <see cref="ExitCodes.CannotConnect"/> and
    /// <see cref="ExitCodes.Refused"/> from the gRPC status (see docs/cli.md for the table), else <see cref="ExitCodes.Failure"/>.
    /// </summary>
    public static int ExitCodeOf(Exception exception) => exception switch
    {
        CliException cli => cli.ExitCode,
        RpcException rpc => ExitCodeOf(rpc),
        _ => ExitCodes.Failure,
    };

    private static int ExitCodeOf(RpcException rpc)
    {
        // A status made up in this process (it carries the exception) never came from the server. It is "cannot connect"
        // when the connection failed or broke (whatever code gRPC chose for that); the client's own limits, a message it
        // cannot read or its own cancellation are other failures.
        if (rpc.Status.DebugException is { } local)
        {
            return rpc.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded
                || (rpc.StatusCode is not (StatusCode.Cancelled or StatusCode.ResourceExhausted) && Chain(local).Any(e => e is IOException or SocketException or AuthenticationException or HttpRequestException or TimeoutException))
                ? ExitCodes.CannotConnect
                : ExitCodes.Failure;
        }

        return rpc.StatusCode switch
        {
            StatusCode.NotFound => ExitCodes.NotFound,
            StatusCode.Unavailable => ExitCodes.CannotConnect,
            StatusCode.PermissionDenied or StatusCode.Unauthenticated => ExitCodes.Refused,
            StatusCode.ResourceExhausted when !rpc.Status.Detail.StartsWith(ReceiveLimitDetail, StringComparison.Ordinal) => ExitCodes.Refused,
            _ => ExitCodes.Failure,
        };
    }

    private static string DescribeRpc(RpcException rpc, string server, ConnectionSettings? settings)
    {
        // gRPC attaches an exception only to a status it made up in this process (connection failures, timeouts,
        // client-side cancellation); a status the server sent has none. Only the server's own may say it failed.
        if (rpc.Status.DebugException is not null)
        {
            return DescribeTransport(rpc, server, settings);
        }

        var detail = rpc.Status.Detail.TrimEnd('.');
        switch (rpc.StatusCode)
        {
            case StatusCode.Unavailable:
                return DescribeTransport(rpc, server, settings);
            case StatusCode.NotFound:
                return detail;
            case StatusCode.InvalidArgument:
                return $"the server rejected the request: {detail}";
            case StatusCode.FailedPrecondition:
                return detail;
            case StatusCode.AlreadyExists:
                return detail;
            case StatusCode.PermissionDenied:
                return $"permission denied: {detail}";
            case StatusCode.Unauthenticated:
                return $"the server did not accept the client certificate {settings?.CertPath}: {detail}. Use a certificate issued by the server's CA (worker certs init)";
            case StatusCode.ResourceExhausted:
                return DescribeResourceExhausted(rpc, detail, server);
            case StatusCode.DeadlineExceeded:
                return $"the server at {server} did not answer in time";
            case StatusCode.Cancelled:
                return $"the server at {server} cancelled the call{(detail.Length > 0 ? ": " + detail : string.Empty)}";
            case StatusCode.Unimplemented:
                return $"the server at {server} does not implement this call ({detail}): is it a JobWorker server of the same version?";
            default:
                return $"the server failed ({rpc.StatusCode}): {detail}";
        }
    }

    // Grpc.Net.Client's own status when an answer is larger than the channel's MaxReceiveMessageSize: it never reached us.
    private const string ReceiveLimitDetail = "Received message exceeds the maximum configured message size";

    private static string DescribeResourceExhausted(RpcException rpc, string detail, string server)
    {
        if (detail.StartsWith(ReceiveLimitDetail, StringComparison.Ordinal))
        {
            return $"the answer from {server} is larger than this client accepts ({WorkerConnection.MaxReceiveMessageBytes / (1024 * 1024)} MiB): nothing is wrong with the server's resources. "
                + "An older server sends every job in one answer: upgrade it, or remove ended jobs (worker rm)";
        }

        // The server's message names the limit; it may add how long to wait.
        var retryAfter = rpc.Trailers.GetValue("retry-after");
        return retryAfter is { Length: > 0 } && !detail.Contains("retry in", StringComparison.Ordinal)
            ? $"{detail}; retry in {retryAfter} s"
            : detail;
    }

    private static string DescribeTransport(RpcException rpc, string server, ConnectionSettings? settings)
    {
        var chain = Chain(rpc.Status.DebugException).ToList();
        if (chain.OfType<ServerUnreachableException>().FirstOrDefault() is { } unreachable)
        {
            return unreachable.Message;
        }

        var socket = chain.OfType<SocketException>().FirstOrDefault();
        if (socket is not null)
        {
            return socket.SocketErrorCode switch
            {
                SocketError.ConnectionRefused => $"cannot connect to {server}: connection refused. Is the server running? (set the address with --server or WORKER_SERVER)",
                SocketError.HostNotFound or SocketError.NoData or SocketError.TryAgain => $"cannot connect to {server}: unknown host. Check --server / WORKER_SERVER",
                SocketError.TimedOut => $"cannot connect to {server}: timed out. Is the address right and the server running?",
                SocketError.NetworkUnreachable or SocketError.HostUnreachable => $"cannot connect to {server}: network unreachable",
                SocketError.ConnectionReset => $"the connection to {server} was reset: the server may have refused the client certificate {settings?.CertPath}, or stopped",
                _ => $"cannot connect to {server}: {socket.Message}",
            };
        }

        var auth = chain.OfType<AuthenticationException>().FirstOrDefault();
        if (auth is not null)
        {
            var message = auth.Message;
            if (message.Contains("RemoteCertificateNameMismatch", StringComparison.Ordinal))
            {
                return $"TLS with {server} failed: the server's certificate does not name host '{settings?.Server.Host}'. Connect by a name the certificate carries, or reissue it";
            }

            if (message.Contains("RemoteCertificateChainErrors", StringComparison.Ordinal) || message.Contains("chain", StringComparison.OrdinalIgnoreCase))
            {
                return $"TLS with {server} failed: the server's certificate is not signed by the CA in {settings?.CaPath}. Check --ca / WORKER_CA";
            }

            return $"TLS with {server} failed: {Innermost(auth)}. Check the client certificate {settings?.CertPath} and the CA {settings?.CaPath}";
        }

        if (chain.OfType<TimeoutException>().FirstOrDefault() is { } timeout)
        {
            return $"timed out on the client side talking to {server} ({Innermost(timeout)}). Is the address right and the server running?";
        }

        if (chain.OfType<OperationCanceledException>().FirstOrDefault() is { } cancelled)
        {
            return $"the call to {server} was cancelled on the client side ({Innermost(cancelled)})";
        }

        if (chain.OfType<IOException>().Any() || chain.OfType<HttpRequestException>().Any())
        {
            return $"the server at {server} closed the connection: it refused the client certificate {settings?.CertPath} ({WhyRefused(settings?.CertPath)}), or it stopped. ({Innermost(chain[^1])})";
        }

        return $"cannot talk to {server}: {rpc.Status.Detail}";
    }

    /// <summary>Why the server may have refused the certificate: its validity by this machine's clock when that
    /// explains it (the server checks its own), else the usual causes.</summary>
    private static string WhyRefused(string? certPath)
    {
        const string Usual = "not issued by its CA, expired, or revoked";
        if (certPath is null)
        {
            return Usual;
        }

        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPemFile(certPath);
            var now = DateTime.UtcNow;
            return certificates.Count == 0 ? Usual
                : certificates[0].NotAfter.ToUniversalTime() < now ? $"it expired at {certificates[0].NotAfter.ToUniversalTime():u}; renew it"
                : certificates[0].NotBefore.ToUniversalTime() > now ? $"it is not valid before {certificates[0].NotBefore.ToUniversalTime():u}; check this machine's clock"
                : Usual;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            return Usual;
        }
        finally
        {
            foreach (var certificate in certificates)
            {
                certificate.Dispose();
            }
        }
    }

    private static IEnumerable<Exception> Chain(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            yield return e;
        }
    }

    // First line only: some messages ("Cannot access a disposed object.\nObject name: …") span lines.
    private static string Innermost(Exception exception) => Chain(exception).Last().Message.Split('\n')[0].Trim().TrimEnd('.');
}
