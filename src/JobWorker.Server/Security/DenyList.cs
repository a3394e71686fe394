using System.Security.Cryptography.X509Certificates;
using JobWorker.Pki;

namespace JobWorker.Server.Security;

/// <summary>The revoked client certificate serial numbers, each with the file that revokes it.</summary>
public sealed class DenyList
{
    private readonly Dictionary<string, string> _serials;

    internal DenyList(Dictionary<string, string> serials, string fingerprint, IReadOnlyList<string> warnings)
    {
        _serials = serials;
        Fingerprint = fingerprint;
        Warnings = warnings;
        LoadedAt = DateTimeOffset.UtcNow;
    }

    /// <summary>How many serial numbers are revoked.</summary>
    public int Count => _serials.Count;

    /// <summary>When the list was loaded.</summary>
    public DateTimeOffset LoadedAt { get; }

    /// <summary>Problems that do not stop the list from applying (a CRL past its next update).</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>A hash of the files' bytes and the CA: the list is reloaded only when it differs.</summary>
    internal string Fingerprint { get; }

    /// <summary>The file that revokes <paramref name="certificate"/>, or null when it is not revoked.</summary>
    public string? RevokedBy(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return _serials.Count > 0 && _serials.TryGetValue(Serial(certificate), out var source) ? source : null;
    }

    /// <summary>The certificate's serial number in the list's form (upper-case hexadecimal, no leading zeros).</summary>
    public static string Serial(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return RevocationList.NormalizeSerial(certificate.SerialNumberBytes.Span);
    }
}
