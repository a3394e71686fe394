using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using JobWorker.Pki;
using JobWorker.Server.Diagnostics;

namespace JobWorker.Server.Security;

/// <summary>
/// Decides whether a TLS client may connect: its certificate must chain to the service CA (and nothing else),
/// be within its validity dates, carry the clientAuth EKU, not be revoked (<see cref="CertificateStore.DenyList"/>),
/// and name a valid user and role. Every refusal is logged with the peer address and the reason.
/// </summary>
public sealed class ClientCertificateValidator
{
    private readonly CertificateStore _store;
    private readonly ILogger<ClientCertificateValidator> _logger;
    private readonly ServerMetrics _metrics;

    public ClientCertificateValidator(CertificateStore store, ILogger<ClientCertificateValidator> logger, ServerMetrics metrics)
    {
        _store = store;
        _logger = logger;
        _metrics = metrics;
    }

    /// <summary>
    /// A validation callback for one connection (it knows the peer, for the log) that checks against
    /// <paramref name="ca"/>: the CA of the set whose server certificate this handshake presents.
    /// </summary>
    public RemoteCertificateValidationCallback CallbackFor(EndPoint? remote, X509Certificate2 ca)
        => (_, certificate, _, _) => Validate(certificate, remote, ca);

    /// <summary>Returns whether the certificate is accepted; logs why when it is not.</summary>
    public bool Validate(X509Certificate? certificate, EndPoint? remote, X509Certificate2 ca)
    {
        // The chain and policy errors SslStream computed use the system trust store; we ignore them and
        // build our own chain against the service CA only.
        var reason = Check(certificate, ca);
        if (reason is null)
        {
            return true;
        }

        _metrics.HandshakeRefused();
        Log.ClientCertificateRefused(_logger, remote?.ToString() ?? "unknown", certificate?.Subject ?? "(none)", reason);
        return false;
    }

    private string? Check(X509Certificate? certificate, X509Certificate2 ca)
    {
        if (certificate is null)
        {
            return "no client certificate was presented";
        }

        // SslStream hands over an X509Certificate2 on .NET Core; convert defensively anyway.
        var owned = certificate as X509Certificate2;
        var cert = owned ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        try
        {
            var chainError = CertificateTrust.Verify(cert, ca, Oids.ClientAuthentication);
            if (chainError is not null)
            {
                return chainError;
            }

            if (_store.DenyList.RevokedBy(cert) is { } source)
            {
                return $"the certificate (serial {DenyList.Serial(cert)}) is revoked by '{source}'";
            }

            return ClientIdentity.TryRead(cert, out _, out var identityError) ? null : identityError;
        }
        finally
        {
            if (owned is null)
            {
                cert.Dispose();
            }
        }
    }
}
