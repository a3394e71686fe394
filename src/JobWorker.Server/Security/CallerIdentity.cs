using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using JobWorker.Pki;

using JobWorker.Server.Errors;

namespace JobWorker.Server.Security;

/// <summary>
/// Reads the caller's identity from the connection's verified client certificate — never from request
/// metadata (headers), which any client can set.
/// </summary>
public static class CallerIdentity
{
    // One certificate object per TLS connection: parse its subject once, not on every call.
    private static readonly ConditionalWeakTable<X509Certificate2, ClientIdentity> Cache = new();

    /// <summary>The caller of this call.</summary>
    /// <exception cref="UnauthenticatedException">No verified certificate, or no usable identity in it.</exception>
    public static ClientIdentity Get(ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return Get(context.GetHttpContext());
    }

    /// <summary>The caller of this HTTP request (for middleware that runs before the gRPC service).</summary>
    /// <exception cref="UnauthenticatedException">No verified certificate, or no usable identity in it.</exception>
    public static ClientIdentity Get(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var certificate = http.Connection.ClientCertificate;
        if (certificate is null)
        {
            // The TLS layer refuses connections without a certificate; this guards against a misconfiguration.
            throw new UnauthenticatedException("a client certificate is required");
        }

        if (Cache.TryGetValue(certificate, out var cached))
        {
            return cached;
        }

        if (!ClientIdentity.TryRead(certificate, out var identity, out var error))
        {
            throw new UnauthenticatedException(error!);
        }

        Cache.AddOrUpdate(certificate, identity!);
        return identity!;
    }
}
