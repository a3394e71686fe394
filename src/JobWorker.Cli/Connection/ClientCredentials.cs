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
/// A file is taken as changed when its size or modification time differs from the loaded one's (a rename into place
/// changes both, or at least the time). A pair that does not load (the certificate renewed before its key) keeps the
/// previous one, and is tried again on the next call.
/// </remarks>
internal sealed class ClientCredentials
{
    private readonly string _certPath;
    private readonly string _keyPath;
    private readonly Lock _lock = new();
    private (FileStamp Cert, FileStamp Key) _loaded;
    private SslStreamCertificateContext _current;

    private ClientCredentials(string certPath, string keyPath, (FileStamp, FileStamp) loaded, SslStreamCertificateContext current)
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
        var stamps = (FileStamp.Of(certPath), FileStamp.Of(keyPath));
        try
        {
            return new ClientCredentials(certPath, keyPath, stamps, Create(certPath, keyPath));
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
        var stamps = (FileStamp.Of(_certPath), FileStamp.Of(_keyPath));
        lock (_lock)
        {
            if (stamps == _loaded)
            {
                return false;
            }

            try
            {
                _current = Create(_certPath, _keyPath);
                _loaded = stamps;
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

    private readonly record struct FileStamp(long Length, DateTime Modified)
    {
        public static FileStamp Of(string path)
        {
            var info = new FileInfo(path);
            return info.Exists ? new FileStamp(info.Length, info.LastWriteTimeUtc) : default;
        }
    }
}
