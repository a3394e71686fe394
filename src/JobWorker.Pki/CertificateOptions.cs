namespace JobWorker.Pki;

/// <summary>Settings for one issued certificate. The defaults suit a development PKI.</summary>
public sealed record CertificateOptions
{
    /// <summary>Start of validity; default: 5 minutes ago (tolerates small clock differences).</summary>
    public DateTimeOffset? NotBefore { get; init; }

    /// <summary>End of validity; default: <see cref="NotBefore"/> plus <see cref="Lifetime"/>.</summary>
    public DateTimeOffset? NotAfter { get; init; }

    /// <summary>Validity length when <see cref="NotAfter"/> is not given. Default 365 days.</summary>
    public TimeSpan Lifetime { get; init; } = TimeSpan.FromDays(365);

    /// <summary>
    /// Whether to include the extended key usage (clientAuth or serverAuth). Only tests turn this off, to
    /// prove that a certificate without it is refused.
    /// </summary>
    public bool IncludeExtendedKeyUsage { get; init; } = true;

    internal (DateTimeOffset NotBefore, DateTimeOffset NotAfter) Resolve()
    {
        var notBefore = NotBefore ?? DateTimeOffset.UtcNow.AddMinutes(-5);
        var notAfter = NotAfter ?? notBefore + Lifetime;
        if (notAfter <= notBefore)
        {
            throw new ArgumentException($"NotAfter ({notAfter:O}) must be later than NotBefore ({notBefore:O}).");
        }

        return (notBefore, notAfter);
    }
}
