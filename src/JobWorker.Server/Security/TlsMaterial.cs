using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace JobWorker.Server.Security;

/// <summary>
/// One consistent set of the server's TLS files: the CA that client certificates must chain to, and the server
/// certificate (with its key) that verifies against that CA. A handshake reads one set and uses it throughout.
/// </summary>
public sealed class TlsMaterial
{
    internal TlsMaterial(X509Certificate2 ca, X509Certificate2 serverCertificate, string fingerprint)
    {
        Ca = ca;
        ServerCertificate = serverCertificate;
        Fingerprint = fingerprint;
        LoadedAt = DateTimeOffset.UtcNow;
        // Built once per set: the chain and the key handle are reused by every handshake.
        Context = SslStreamCertificateContext.Create(serverCertificate, additionalCertificates: null, offline: true);
    }

    /// <summary>The CA client certificates must chain to.</summary>
    public X509Certificate2 Ca { get; }

    /// <summary>The server certificate, with its private key.</summary>
    public X509Certificate2 ServerCertificate { get; }

    /// <summary>What SslStream presents.</summary>
    public SslStreamCertificateContext Context { get; }

    /// <summary>When this set was loaded.</summary>
    public DateTimeOffset LoadedAt { get; }

    /// <summary>A hash of the three files' bytes: a set is reloaded only when it differs.</summary>
    internal string Fingerprint { get; }

    /// <summary>The set in a few words, for logs.</summary>
    public string Describe()
        => $"server certificate '{ServerCertificate.Subject}' (serial {ServerCertificate.SerialNumber}, valid until {ServerCertificate.NotAfter.ToUniversalTime():yyyy-MM-ddTHH:mm:ssZ}) and CA '{Ca.Subject}' (serial {Ca.SerialNumber})";
}
