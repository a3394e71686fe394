using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using JobWorker.Cli.Infrastructure;

namespace JobWorker.Cli.Connection;

/// <summary>
/// The client certificate and key this process presents, re-read when their files change: a renewal daemon
/// (<c>step ca renew --daemon</c>) rewrites them while a long <c>worker logs -f</c> runs, and the server closes a
/// connection whose certificate has expired, so the follower's reconnection must present the renewed one.
/// </summary>
/// <remarks>
/// The files are compared by content (two small reads per call; a modification time can stay the same across a quick
/// rewrite), as the server compares its own TLS files. A pair that does not load (a new key next to the old
/// certificate) keeps the previous one, and is tried again on the next call.
/// </remarks>
internal sealed class ClientCredentials
{
    private readonly string _certPath;
    private readonly string _keyPath;
    private readonly Lock _lock = new();
    private (byte[] Cert, byte[] Key) _loaded;
    private SslStreamCertificateContext _current;

    private ClientCredentials(string certPath, string keyPath, (byte[], byte[]) loaded, SslStreamCertificateContext current)
    {
        _certPath = certPath;
        _keyPath = keyPath;
        _loaded = loaded;
        _current = current;
    }

    /// <summary>The certificate context to present on the next handshake.</summary>
    public SslStreamCertificateContext Current
    {
        get
        {
            lock (_lock)
            {
                return _current;
            }
        }
    }

    /// <summary>Loads the pair now.</summary>
    /// <exception cref="CliException">The files cannot be read or do not hold a certificate with its key.</exception>
    public static ClientCredentials Load(string certPath, string keyPath)
    {
        try
        {
            return new ClientCredentials(certPath, keyPath, (Content(certPath), Content(keyPath)), Create(certPath, keyPath));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            throw new CliException($"cannot load the client certificate {certPath} with key {keyPath}: {ex.Message.TrimEnd('.')}. Check --cert/--key (WORKER_CERT/WORKER_KEY)");
        }
    }

    /// <summary>Reloads the pair if its files changed since it was loaded.</summary>
    /// <returns>Whether a new pair was loaded: connections opened from now on should present it.</returns>
    public bool Refresh()
    {
        var contents = (Cert: Content(_certPath), Key: Content(_keyPath));
        lock (_lock)
        {
            if (contents.Cert.AsSpan().SequenceEqual(_loaded.Cert) && contents.Key.AsSpan().SequenceEqual(_loaded.Key))
            {
                return false;
            }

            try
            {
                _current = Create(_certPath, _keyPath);
                _loaded = contents;
                return true;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
            {
                // Half renewed: keep presenting the pair that loaded; the next call looks again.
                return false;
            }
        }
    }

    // offline: the client chain is sent as is, without fetching or searching stores.
    private static SslStreamCertificateContext Create(string certPath, string keyPath)
        => SslStreamCertificateContext.Create(X509Certificate2.CreateFromPemFile(certPath, keyPath), additionalCertificates: null, offline: true);

    /// <summary>A file's bytes, or none when it cannot be read now (mid-rename, say: the next call looks again).</summary>
    private static byte[] Content(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
