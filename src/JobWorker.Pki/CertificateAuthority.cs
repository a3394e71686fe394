using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace JobWorker.Pki;

/// <summary>
/// A certificate authority with its private key: issues the server certificate and client certificates.
/// Keys are ECDSA P-256, signatures ECDSA with SHA-256.
/// </summary>
public sealed class CertificateAuthority : IDisposable
{
    private CertificateAuthority(X509Certificate2 certificate)
    {
        Certificate = certificate;
    }

    /// <summary>The CA certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>Creates a new self-signed CA.</summary>
    /// <param name="name">The CA's common name.</param>
    /// <param name="options">Validity; default 10 years when no lifetime is given.</param>
    public static CertificateAuthority Create(string name = "JobWorker Development CA", CertificateOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var (notBefore, notAfter) = (options ?? new CertificateOptions { Lifetime = TimeSpan.FromDays(3650) }).Resolve();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var subject = new X500DistinguishedNameBuilder();
        subject.AddOrganizationName("JobWorker");
        subject.AddCommonName(name);
        var request = new CertificateRequest(subject.Build(), key, HashAlgorithmName.SHA256);
        // Path length 0: this CA signs only end-entity certificates, never another CA.
        request.CertificateExtensions.Add(X509BasicConstraintsExtension.CreateForCertificateAuthority(0));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        return new CertificateAuthority(request.CreateSelfSigned(notBefore, notAfter));
    }

    /// <summary>Wraps an existing CA certificate that has its private key.</summary>
    /// <exception cref="ArgumentException">The certificate has no private key or is not a CA.</exception>
    public static CertificateAuthority FromCertificate(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        if (!certificate.HasPrivateKey)
        {
            throw new ArgumentException("The CA certificate has no private key.", nameof(certificate));
        }

        var constraints = certificate.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault();
        if (constraints is not { CertificateAuthority: true })
        {
            throw new ArgumentException($"Certificate '{certificate.Subject}' is not a CA (basic constraints).", nameof(certificate));
        }

        return new CertificateAuthority(certificate);
    }

    /// <summary>Loads a CA from PEM files written by <see cref="PemFiles"/>.</summary>
    public static CertificateAuthority Load(string certificatePath, string keyPath)
        => FromCertificate(PemFiles.LoadCertificateWithKey(certificatePath, keyPath));

    /// <summary>
    /// Issues a server certificate (serverAuth) whose subject alternative names are the given DNS names and
    /// IP addresses.
    /// </summary>
    public X509Certificate2 IssueServer(IEnumerable<string> dnsNames, IEnumerable<IPAddress> ipAddresses, CertificateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(dnsNames);
        ArgumentNullException.ThrowIfNull(ipAddresses);
        var dns = dnsNames.Where(n => !string.IsNullOrWhiteSpace(n)).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        var ips = ipAddresses.Distinct().ToList();
        if (dns.Count == 0 && ips.Count == 0)
        {
            throw new ArgumentException("A server certificate needs at least one DNS name or IP address.", nameof(dnsNames));
        }

        var san = new SubjectAlternativeNameBuilder();
        dns.ForEach(san.AddDnsName);
        ips.ForEach(san.AddIpAddress);
        var subject = new X500DistinguishedNameBuilder();
        subject.AddOrganizationName("JobWorker");
        subject.AddCommonName(dns.Count > 0 ? dns[0] : ips[0].ToString());
        return Issue(subject.Build(), Oids.ServerAuth, options, san.Build(critical: false));
    }

    /// <summary>Issues a client certificate (clientAuth) for <paramref name="identity"/>: CN = user, OU = role.</summary>
    public X509Certificate2 IssueClient(ClientIdentity identity, CertificateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(identity);
        var error = ClientIdentity.Validate(identity.User, identity.Role);
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(identity));
        }

        var subject = new X500DistinguishedNameBuilder();
        subject.AddOrganizationName("JobWorker");
        subject.AddOrganizationalUnitName(identity.Role);
        subject.AddCommonName(identity.User);
        return Issue(subject.Build(), Oids.ClientAuth, options, extraExtension: null);
    }

    private X509Certificate2 Issue(X500DistinguishedName subject, Oid usage, CertificateOptions? options, X509Extension? extraExtension)
    {
        options ??= new CertificateOptions();
        var (notBefore, notAfter) = options.Resolve();
        // An issued certificate must not outlive its issuer: X509Chain would call it invalid.
        if (notAfter > Certificate.NotAfter)
        {
            notAfter = Certificate.NotAfter;
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        if (options.IncludeExtendedKeyUsage)
        {
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([usage], critical: false));
        }

        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(
            Certificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        if (extraExtension is not null)
        {
            request.CertificateExtensions.Add(extraExtension);
        }

        var serial = new byte[16];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7F; // positive, as RFC 5280 requires
        using var issued = request.Create(Certificate, notBefore, notAfter, serial);
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>Releases the CA certificate and its key.</summary>
    public void Dispose() => Certificate.Dispose();
}
