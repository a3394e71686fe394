using System.Security.Cryptography.X509Certificates;

namespace JobWorker.Pki;

/// <summary>
/// Verifies a peer certificate against the service's own CA only (never the system store): full chain,
/// valid dates, and the required extended key usage. Revocation is not checked (the development PKI has no
/// CRL). The server uses it for client certificates, clients for the server certificate.
/// </summary>
public static class CertificateTrust
{
    /// <summary>Builds a chain policy that trusts exactly <paramref name="ca"/> and requires <paramref name="requiredUsageOid"/>.</summary>
    public static X509ChainPolicy CreatePolicy(X509Certificate2 ca, string requiredUsageOid, DateTime? verificationTime = null)
    {
        ArgumentNullException.ThrowIfNull(ca);
        ArgumentException.ThrowIfNullOrEmpty(requiredUsageOid);
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
            // Never fetch intermediates from AIA URLs: the chain is the leaf and our CA, nothing else.
            DisableCertificateDownloads = true,
            VerificationFlags = X509VerificationFlags.NoFlag,
        };
        policy.CustomTrustStore.Add(ca);
        policy.ApplicationPolicy.Add(new(requiredUsageOid));
        if (verificationTime is { } time)
        {
            policy.VerificationTime = time;
            policy.VerificationTimeIgnored = false;
        }

        return policy;
    }

    /// <summary>
    /// Verifies <paramref name="certificate"/>. Returns null when it chains to <paramref name="ca"/> and carries
    /// <paramref name="requiredUsageOid"/>, otherwise a short reason (for logs) such as "NotTimeValid: …".
    /// </summary>
    public static string? Verify(X509Certificate2 certificate, X509Certificate2 ca, string requiredUsageOid, DateTime? verificationTime = null)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        // RFC 5280 treats a certificate without an EKU extension as good for every purpose, and so does
        // X509Chain's ApplicationPolicy check. We require the usage to be stated explicitly.
        var usages = certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().FirstOrDefault();
        if (usages is null)
        {
            return $"NotValidForUsage: the certificate has no extended key usage; {requiredUsageOid} is required";
        }

        if (!usages.EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>().Any(o => o.Value == requiredUsageOid))
        {
            return $"NotValidForUsage: the certificate's extended key usage lacks {requiredUsageOid}";
        }

        using var chain = new X509Chain { ChainPolicy = CreatePolicy(ca, requiredUsageOid, verificationTime) };
        try
        {
            if (chain.Build(certificate))
            {
                // CustomRootTrust already requires the chain to end at a trusted root; make the rule explicit
                // so a future policy change cannot silently widen it.
                var root = chain.ChainElements[^1].Certificate;
                return root.RawDataMemory.Span.SequenceEqual(ca.RawDataMemory.Span) ? null : "chain does not end at the service CA";
            }

            var reasons = chain.ChainStatus.Length > 0
                ? chain.ChainStatus
                : chain.ChainElements.SelectMany(e => e.ChainElementStatus).ToArray();
            return reasons.Length == 0
                ? "chain could not be built"
                : string.Join("; ", reasons.Select(s => $"{s.Status}: {s.StatusInformation.Trim()}").Distinct());
        }
        finally
        {
            // Chain elements are fresh certificate objects owned by the chain: release them now.
            foreach (var element in chain.ChainElements)
            {
                if (!ReferenceEquals(element.Certificate, certificate))
                {
                    element.Certificate.Dispose();
                }
            }
        }
    }
}
