using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace JobWorker.Pki;

/// <summary>Writes and reads certificates and private keys as PEM files with safe permissions.</summary>
public static class PemFiles
{
    /// <summary>Mode of private key files: owner read/write only (0600).</summary>
    public const UnixFileMode PrivateKeyMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Mode of certificate files (0644): certificates are public.</summary>
    public const UnixFileMode CertificateMode = PrivateKeyMode | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    /// <summary>Mode of the PKI directory: owner only (0700).</summary>
    public const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>Writes <paramref name="certificate"/> (PEM "CERTIFICATE") to <paramref name="path"/>, mode 0644.</summary>
    public static void WriteCertificate(X509Certificate2 certificate, string path)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        WriteAtomically(path, certificate.ExportCertificatePem() + "\n", CertificateMode);
    }

    /// <summary>Writes the certificate's ECDSA private key (PEM "PRIVATE KEY", PKCS#8) to <paramref name="path"/>, mode 0600.</summary>
    /// <exception cref="ArgumentException">The certificate has no ECDSA private key.</exception>
    public static void WritePrivateKey(X509Certificate2 certificate, string path)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        using var key = certificate.GetECDsaPrivateKey()
            ?? throw new ArgumentException($"Certificate '{certificate.Subject}' has no ECDSA private key.", nameof(certificate));
        var pem = key.ExportPkcs8PrivateKeyPem();
        WriteAtomically(path, pem + "\n", PrivateKeyMode);
    }

    /// <summary>Loads a certificate without a key (for example the CA certificate a peer is checked against).</summary>
    /// <exception cref="PkiException">The file is missing or holds no certificate.</exception>
    public static X509Certificate2 LoadCertificate(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        try
        {
            // X509CertificateLoader reads a single PEM or DER certificate; CreateFromPemFile(path) would want a key.
            return X509CertificateLoader.LoadCertificateFromFile(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new PkiException($"Cannot load the certificate '{path}': {e.Message}", e);
        }
    }

    /// <summary>Loads a certificate and its private key from two PEM files.</summary>
    /// <exception cref="PkiException">A file is missing, unreadable, or the key does not match the certificate.</exception>
    public static X509Certificate2 LoadCertificateWithKey(string certificatePath, string keyPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(certificatePath);
        ArgumentException.ThrowIfNullOrEmpty(keyPath);
        try
        {
            return X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            throw new PkiException($"Cannot load the certificate '{certificatePath}' with the key '{keyPath}': {e.Message}", e);
        }
    }

    /// <summary>
    /// Returns a message when a private key file can be read or written by anyone but its owner, or null when
    /// its mode is safe. Callers decide whether to warn or refuse.
    /// </summary>
    public static string? CheckPrivateKeyPermissions(string keyPath)
    {
        var mode = File.GetUnixFileMode(keyPath);
        var loose = mode & ~(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return loose == 0 ? null : $"private key '{keyPath}' has mode {ToOctal(mode)}; it should be 0600 (chmod 600 '{keyPath}')";
    }

    internal static string ToOctal(UnixFileMode mode) => "0" + Convert.ToString((int)mode, 8);

    // Write to a new temporary file created with the final mode, then rename: no moment exists at which the
    // key is on disk with a wider mode, and a crash never leaves a half-written file under the real name.
    private static void WriteAtomically(string path, string content, UnixFileMode mode)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var temp = full + "." + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)) + ".tmp";
        try
        {
            using (var stream = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = mode,
            }))
            {
                stream.Write(Encoding.ASCII.GetBytes(content));
                stream.Flush(flushToDisk: true);
            }

            // The umask may have narrowed the mode; set it exactly (never wider than asked).
            File.SetUnixFileMode(temp, mode);
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
