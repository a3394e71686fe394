using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using JobWorker.Pki;
using JobWorker.Server.Configuration;
using JobWorker.Server.Diagnostics;
using JobWorker.Server.RateLimiting;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace JobWorker.Server.Security;

/// <summary>
/// Every open gRPC connection with the client certificate it was accepted with. It closes the connections of a
/// certificate that gets revoked, and caps the connections each user may have open at once
/// (<see cref="RoleRateLimits.MaxConnections"/>): a connection over the cap is kept just long enough to answer
/// its calls <c>ResourceExhausted</c> with a <c>retry-after</c> trailer, then closed.
/// </summary>
public sealed class ConnectionRegistry
{
    /// <summary>How long a connection over the cap stays open for the client to read its refusal.</summary>
    public static readonly TimeSpan RefusedConnectionLifetime = TimeSpan.FromSeconds(10);

    // The cap frees when another connection closes, not after a known time: a hint, as for output streams.
    private const int RetryAfterSeconds = 5;

    private readonly ConcurrentDictionary<string, ClientConnection> _open = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _admitted = new(StringComparer.Ordinal);
    private readonly CertificateStore _store;
    private readonly RateLimitOptions _limits;
    private readonly ILogger<ConnectionRegistry> _logger;

    public ConnectionRegistry(CertificateStore store, RateLimitOptions limits, ILogger<ConnectionRegistry> logger)
    {
        _store = store;
        _limits = limits;
        _logger = logger;
    }

    /// <summary>The connections <paramref name="user"/> has open and admitted.</summary>
    public int Count(string user)
    {
        lock (_admitted)
        {
            return _admitted.GetValueOrDefault(user);
        }
    }

    /// <summary>Kestrel connection middleware, after the TLS handshake: registers the connection while it lasts.</summary>
    public async Task OnConnectionAsync(ConnectionContext context, ConnectionDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var certificate = context.Features.Get<ITlsConnectionFeature>()?.ClientCertificate;
        if (certificate is null || !ClientIdentity.TryRead(certificate, out var identity, out _))
        {
            // The handshake refuses these; should one get here, its calls answer Unauthenticated.
            await next(context).ConfigureAwait(false);
            return;
        }

        var connection = new ClientConnection(context, identity!, certificate, Admit(identity!));
        _open[context.ConnectionId] = connection;
        try
        {
            // The deny list may have changed between the handshake's check and the registration just above, and
            // CloseRevoked may have missed this connection: look again now that it is registered.
            if (_store.DenyList.RevokedBy(certificate) is { } source)
            {
                Close(connection, source);
                return;
            }

            if (HasExpired(certificate, DateTimeOffset.UtcNow))
            {
                CloseExpiredConnection(connection);
                return;
            }

            if (!connection.Admitted)
            {
                var limit = For(identity!);
                Log.ConnectionOverCap(_logger, connection.Id, identity!.User, connection.Remote, limit.Max, limit.Setting);
                connection.CloseLater(RefusedConnectionLifetime);
            }

            await next(context).ConfigureAwait(false);
        }
        finally
        {
            _open.TryRemove(context.ConnectionId, out _);
            connection.Dispose();
            if (connection.Admitted)
            {
                lock (_admitted)
                {
                    if (--_admitted[identity!.User] == 0)
                    {
                        _admitted.Remove(identity.User);
                    }
                }
            }
        }
    }

    /// <summary>
    /// HTTP middleware: a call on a connection over its user's cap is answered ResourceExhausted and the connection
    /// is asked to close (HTTP/2 GOAWAY once its calls are answered).
    /// </summary>
    public bool TryRefuseCall(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (!_open.TryGetValue(http.Connection.Id, out var connection) || connection.Admitted)
        {
            return false;
        }

        var limit = For(connection.Identity);
        var message = $"user '{connection.Identity.User}' already has {limit.Max} connections open, the most allowed ({limit.Setting}); close one (another 'worker' command, such as a 'worker logs -f') or retry in {RetryAfterSeconds} s";
        Log.CallFailed(_logger, connection.Identity.User, http.Request.Path, nameof(StatusCode.ResourceExhausted), message);
        RateLimits.WriteTrailersOnly(http.Response, StatusCode.ResourceExhausted, message, RetryAfterSeconds);
        connection.RequestClose();
        return true;
    }

    /// <summary>Closes every open connection whose certificate the deny list now revokes.</summary>
    public void CloseRevoked()
    {
        var denyList = _store.DenyList;
        foreach (var connection in _open.Values)
        {
            if (denyList.RevokedBy(connection.Certificate) is { } source)
            {
                Close(connection, source);
            }
        }
    }

    /// <summary>
    /// Closes every open connection whose client certificate has expired since its handshake: the handshake checks the
    /// validity once, and a connection (a <c>worker logs -f</c>, say) may outlive it by far.
    /// </summary>
    public void CloseExpired(DateTimeOffset now)
    {
        foreach (var connection in _open.Values)
        {
            if (HasExpired(connection.Certificate, now))
            {
                CloseExpiredConnection(connection);
            }
        }
    }

    private static bool HasExpired(X509Certificate2 certificate, DateTimeOffset now) => certificate.NotAfter.ToUniversalTime() < now.UtcDateTime;

    private void CloseExpiredConnection(ClientConnection connection)
    {
        var notAfter = new DateTimeOffset(connection.Certificate.NotAfter.ToUniversalTime());
        Log.ExpiredConnectionClosed(_logger, connection.Id, connection.Identity.User, connection.Remote, DenyList.Serial(connection.Certificate), notAfter);
        connection.Abort("the client certificate has expired");
    }

    private void Close(ClientConnection connection, string source)
    {
        Log.RevokedConnectionClosed(_logger, connection.Id, connection.Identity.User, connection.Remote, DenyList.Serial(connection.Certificate), source);
        connection.Abort("the client certificate is revoked");
    }

    private bool Admit(ClientIdentity identity)
    {
        var max = For(identity).Max;
        lock (_admitted)
        {
            var count = _admitted.GetValueOrDefault(identity.User);
            if (max > 0 && count >= max)
            {
                return false;
            }

            _admitted[identity.User] = count + 1;
            return true;
        }
    }

    private (int Max, string Setting) For(ClientIdentity identity)
    {
        var admin = identity.Role == Roles.Admin;
        var limits = admin ? _limits.Admin : _limits.User;
        return (limits.MaxConnections, $"{RateLimitOptions.Section}:{(admin ? nameof(RateLimitOptions.Admin) : nameof(RateLimitOptions.User))}:{nameof(RoleRateLimits.MaxConnections)}");
    }

    private sealed class ClientConnection(ConnectionContext context, ClientIdentity identity, X509Certificate2 certificate, bool admitted) : IDisposable
    {
        private Timer? _closeTimer;

        public string Id => context.ConnectionId;

        public ClientIdentity Identity => identity;

        public X509Certificate2 Certificate => certificate;

        public bool Admitted => admitted;

        public string Remote => context.RemoteEndPoint?.ToString() ?? "unknown";

        public void Abort(string reason) => context.Abort(new ConnectionAbortedException(reason));

        public void RequestClose() => context.Features.Get<IConnectionLifetimeNotificationFeature>()?.RequestClose();

        public void CloseLater(TimeSpan delay)
            => _closeTimer = new Timer(_ => Abort("over the user's connection cap"), null, delay, Timeout.InfiniteTimeSpan);

        public void Dispose() => _closeTimer?.Dispose();
    }
}
