using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using JobWorker.Pki;
using JobWorker.Server.Configuration;
using JobWorker.Server.Diagnostics;

namespace JobWorker.Server.Security;

/// <summary>
/// The server's TLS files as last loaded successfully: the certificate set every new handshake uses and the deny
/// list of revoked client certificates. <see cref="Check"/> compares the files with what is loaded and swaps in a
/// new set only when it is complete and consistent; a missing, half-written or mismatched file keeps the old set
/// and is logged as a warning (once per distinct content) until a valid set is in place.
/// </summary>
public sealed class CertificateStore
{
    private readonly ServerOptions _options;
    private readonly TlsOptions _tls;
    private readonly Lock _gate = new();
    private TlsMaterial _material;
    private DenyList _denyList;
    private string? _refusedIdentity;
    private string? _refusedDenyList;

    private CertificateStore(ServerOptions options, TlsOptions tls, TlsMaterial material, DenyList denyList)
    {
        _options = options;
        _tls = tls;
        _material = material;
        _denyList = denyList;
    }

    /// <summary>The set new handshakes use.</summary>
    public TlsMaterial Current => Volatile.Read(ref _material);

    /// <summary>The revoked serial numbers in force.</summary>
    public DenyList DenyList => Volatile.Read(ref _denyList);

    /// <summary>The files this store reads (for the watcher).</summary>
    public IEnumerable<string> Files => new[] { _options.CaCertificate, _options.ServerCertificate, _options.ServerKey }.Concat(DenyFiles(_tls))
        .Where(f => !string.IsNullOrEmpty(f));

    /// <summary>Loads every file once, at start-up.</summary>
    /// <exception cref="PkiException">A file is missing or unusable; the message names it and the setting.</exception>
    public static CertificateStore Load(ServerOptions options, TlsOptions tls)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(tls);
        var identity = ReadIdentityFiles(options);
        var material = ParseIdentity(options, identity);
        var deny = ParseDenyList(tls, ReadDenyFiles(tls, material.Ca), material.Ca);
        return new CertificateStore(options, tls, material, deny);
    }

    /// <summary>
    /// Reloads whatever changed on disk. Returns whether the deny list changed (so open connections must be
    /// checked against it). Never throws for a bad file: it is logged and the old set stays.
    /// </summary>
    public bool Check(ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        lock (_gate)
        {
            var identity = ReadIdentityFiles(_options);
            if (identity.Fingerprint != _material.Fingerprint && identity.Fingerprint != _refusedIdentity)
            {
                try
                {
                    var material = ParseIdentity(_options, identity);
                    Volatile.Write(ref _material, material);
                    _refusedIdentity = null;
                    Log.CertificatesReloaded(logger, material.Describe());
                }
                catch (PkiException e)
                {
                    // Old material stays; the same bad content is not reported again on every check.
                    _refusedIdentity = identity.Fingerprint;
                    Log.CertificatesNotReloaded(logger, e.Message, _material.Describe(), _material.LoadedAt);
                }
            }

            var ca = _material.Ca;
            var deny = ReadDenyFiles(_tls, ca);
            if (deny.Fingerprint == _denyList.Fingerprint || deny.Fingerprint == _refusedDenyList)
            {
                return false;
            }

            try
            {
                var list = ParseDenyList(_tls, deny, ca);
                Volatile.Write(ref _denyList, list);
                _refusedDenyList = null;
                Log.DenyListReloaded(logger, list.Count, string.Join(", ", DenyFiles(_tls)));
                foreach (var warning in list.Warnings)
                {
                    Log.ConfigurationWarning(logger, warning);
                }

                return true;
            }
            catch (PkiException e)
            {
                _refusedDenyList = deny.Fingerprint;
                Log.DenyListNotReloaded(logger, e.Message, _denyList.Count, _denyList.LoadedAt);
                return false;
            }
        }
    }

    private sealed record FileSet(string Fingerprint, IReadOnlyList<(string Path, byte[]? Bytes, string? Error)> Files);

    private static FileSet Read(IEnumerable<string> paths, ReadOnlySpan<byte> extra)
    {
        var files = new List<(string, byte[]?, string?)>();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var path in paths)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(path + "\0"));
            try
            {
                var bytes = File.ReadAllBytes(path);
                files.Add((path, bytes, null));
                hash.AppendData(bytes);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                files.Add((path, null, e.Message));
                hash.AppendData(Encoding.UTF8.GetBytes("\0error\0" + e.Message));
            }

            hash.AppendData("\0"u8);
        }

        hash.AppendData(extra);
        return new FileSet(Convert.ToHexString(hash.GetHashAndReset()), files);
    }

    private static FileSet ReadIdentityFiles(ServerOptions options)
        => Read([options.CaCertificate, options.ServerCertificate, options.ServerKey], []);

    private static IEnumerable<string> DenyFiles(TlsOptions tls)
        => new[] { tls.RevokedSerialsFile, tls.RevocationListFile }.Where(f => !string.IsNullOrEmpty(f));

    // The CA is part of the list's identity: a CRL is verified against it, so a new CA means a new check.
    private static FileSet ReadDenyFiles(TlsOptions tls, X509Certificate2 ca) => Read(DenyFiles(tls), ca.RawDataMemory.Span);

    private static TlsMaterial ParseIdentity(ServerOptions options, FileSet files)
    {
        var (caPath, caBytes, caError) = files.Files[0];
        var (certPath, certBytes, certError) = files.Files[1];
        var (keyPath, keyBytes, keyError) = files.Files[2];
        X509Certificate2 ca;
        try
        {
            ca = caBytes is null
                ? throw new IOException(caError)
                : X509CertificateLoader.LoadCertificate(caBytes);
        }
        catch (Exception e) when (e is IOException or CryptographicException)
        {
            throw new PkiException($"Cannot load the certificate '{caPath}': {e.Message}. Set JobWorker:CaCertificate (--ca), or create a development PKI with 'JobWorker.Server certs init --dir DIR'.", e);
        }

        X509Certificate2 certificate;
        try
        {
            if (certBytes is null || keyBytes is null)
            {
                throw new IOException(certError ?? keyError);
            }

            // Linux's SslStream works with the ephemeral key CreateFromPem returns; no PFX round trip needed.
            certificate = X509Certificate2.CreateFromPem(Encoding.ASCII.GetString(certBytes), Encoding.ASCII.GetString(keyBytes));
        }
        catch (Exception e) when (e is IOException or CryptographicException or ArgumentException)
        {
            throw new PkiException($"Cannot load the certificate '{certPath}' with the key '{keyPath}': {e.Message}. Set JobWorker:ServerCertificate (--cert) and JobWorker:ServerKey (--key).", e);
        }

        var problem = PemFiles.CheckPrivateKeyPermissions(options.ServerKey);
        if (problem is not null)
        {
            throw new PkiException(problem);
        }

        // A server certificate that clients cannot verify would only fail later, on every client: refuse it now.
        var error = CertificateTrust.Verify(certificate, ca, Oids.ServerAuthentication);
        if (error is not null)
        {
            throw new PkiException($"the server certificate '{certPath}' does not verify against the CA '{caPath}' for serverAuth: {error}");
        }

        return new TlsMaterial(ca, certificate, files.Fingerprint);
    }

    private static DenyList ParseDenyList(TlsOptions tls, FileSet files, X509Certificate2 ca)
    {
        var serials = new Dictionary<string, string>(StringComparer.Ordinal);
        var warnings = new List<string>();
        foreach (var (path, bytes, error) in files.Files)
        {
            if (bytes is null)
            {
                throw new PkiException($"Cannot read the revocation file '{path}': {error}");
            }

            if (path == tls.RevokedSerialsFile)
            {
                var lines = Encoding.UTF8.GetString(bytes).Split('\n');
                for (var i = 0; i < lines.Length; i++)
                {
                    var text = lines[i].Split('#', 2)[0].Trim();
                    if (text.Length == 0)
                    {
                        continue;
                    }

                    var serial = RevocationList.NormalizeSerial(text)
                        ?? throw new PkiException($"'{path}' line {i + 1}: '{text}' is not a serial number in hexadecimal ({TlsOptions.Section}:RevokedSerialsFile)");
                    serials.TryAdd(serial, path);
                }
            }
            else
            {
                RevocationList.Contents crl;
                try
                {
                    crl = RevocationList.Read(bytes, ca);
                }
                catch (PkiException e)
                {
                    throw new PkiException($"the revocation list '{path}' ({TlsOptions.Section}:RevocationListFile) is unusable: {e.Message}", e);
                }

                foreach (var serial in crl.Serials)
                {
                    serials.TryAdd(serial, path);
                }

                if (crl.NextUpdate is { } next && next < DateTimeOffset.UtcNow)
                {
                    warnings.Add($"the revocation list '{path}' is past its next update ({next.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}); it still applies, but revocations since then are missing: publish a new one");
                }
            }
        }

        return new DenyList(serials, files.Fingerprint, warnings);
    }
}
