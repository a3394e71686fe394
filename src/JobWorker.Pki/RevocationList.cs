using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace JobWorker.Pki;

/// <summary>
/// Reads the revoked serial numbers of an X.509 CRL (RFC 5280, PEM "X509 CRL" or DER) after checking that the
/// service CA issued and signed it. .NET can build CRLs (<see cref="CertificateRevocationListBuilder"/>) but offers
/// no way to verify one and list its entries, and X509Chain's revocation check on Linux reads CRLs only from its
/// own download cache: hence this small reader.
/// </summary>
public static class RevocationList
{
    /// <summary>The revoked serial numbers (in <see cref="NormalizeSerial(ReadOnlySpan{byte})"/> form) and the CRL's dates.</summary>
    public sealed record Contents(IReadOnlySet<string> Serials, DateTimeOffset ThisUpdate, DateTimeOffset? NextUpdate);

    /// <summary>Parses <paramref name="data"/> and verifies it against <paramref name="issuer"/>.</summary>
    /// <exception cref="PkiException">The data is not a CRL, was not issued by <paramref name="issuer"/>, or its signature does not verify.</exception>
    public static Contents Read(ReadOnlySpan<byte> data, X509Certificate2 issuer)
    {
        ArgumentNullException.ThrowIfNull(issuer);
        var der = Decode(data);
        try
        {
            return ReadDer(der, issuer);
        }
        catch (Exception e) when (e is AsnContentException or CryptographicException)
        {
            throw new PkiException($"not a valid X.509 CRL: {e.Message}", e);
        }
    }

    /// <summary>
    /// A serial number as upper-case hexadecimal without separators or leading zeros, so that
    /// <c>00:A1:b2</c>, <c>a1b2</c> and a certificate's <see cref="X509Certificate2.SerialNumber"/> compare equal.
    /// </summary>
    public static string NormalizeSerial(ReadOnlySpan<byte> bigEndian)
    {
        var start = 0;
        while (start < bigEndian.Length - 1 && bigEndian[start] == 0)
        {
            start++;
        }

        var hex = Convert.ToHexString(bigEndian[start..]).TrimStart('0');
        return hex.Length == 0 ? "0" : hex;
    }

    /// <summary>
    /// The text form of <see cref="NormalizeSerial(ReadOnlySpan{byte})"/>: hexadecimal, with or without colons and
    /// spaces, optionally after <c>serial=</c> (what <c>openssl x509 -noout -serial</c> prints). Null when it is not that.
    /// </summary>
    public static string? NormalizeSerial(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = text.Trim();
        if (text.StartsWith("serial=", StringComparison.OrdinalIgnoreCase))
        {
            text = text["serial=".Length..];
        }

        var builder = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            if (char.IsAsciiHexDigit(c))
            {
                builder.Append(char.ToUpperInvariant(c));
            }
            else if (c is not (':' or ' ' or '\t'))
            {
                return null;
            }
        }

        if (builder.Length == 0)
        {
            return null;
        }

        var hex = builder.ToString().TrimStart('0');
        return hex.Length == 0 ? "0" : hex;
    }

    private static byte[] Decode(ReadOnlySpan<byte> data)
    {
        var text = Encoding.ASCII.GetString(data);
        if (!text.Contains("-----BEGIN", StringComparison.Ordinal))
        {
            return data.ToArray();
        }

        if (!PemEncoding.TryFind(text, out var fields) || text[fields.Label] != "X509 CRL")
        {
            throw new PkiException("the file holds PEM data but no \"X509 CRL\" block");
        }

        return Convert.FromBase64String(text[fields.Base64Data]);
    }

    private static Contents ReadDer(byte[] der, X509Certificate2 issuer)
    {
        var outer = new AsnReader(der, AsnEncodingRules.DER);
        var certificateList = outer.ReadSequence();
        outer.ThrowIfNotEmpty();
        var signedPart = certificateList.PeekEncodedValue().ToArray();
        var tbs = certificateList.ReadSequence();
        var algorithm = certificateList.ReadSequence();
        var signatureOid = algorithm.ReadObjectIdentifier();
        var signature = certificateList.ReadBitString(out _);
        certificateList.ThrowIfNotEmpty();

        if (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Integer))
        {
            tbs.ReadInteger(); // version
        }

        tbs.ReadSequence(); // the signature algorithm again
        var issuerName = new X500DistinguishedName(tbs.ReadEncodedValue().Span);
        if (!issuerName.RawData.AsSpan().SequenceEqual(issuer.SubjectName.RawData))
        {
            throw new PkiException($"the CRL was issued by '{issuerName.Name}', not by the CA '{issuer.Subject}'");
        }

        VerifySignature(signedPart, signature, signatureOid, issuer);

        var thisUpdate = ReadTime(tbs);
        DateTimeOffset? nextUpdate = null;
        if (tbs.HasData && IsTime(tbs.PeekTag()))
        {
            nextUpdate = ReadTime(tbs);
        }

        var serials = new HashSet<string>(StringComparer.Ordinal);
        if (tbs.HasData && tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
        {
            var revoked = tbs.ReadSequence();
            while (revoked.HasData)
            {
                var entry = revoked.ReadSequence();
                serials.Add(NormalizeSerial(entry.ReadIntegerBytes().Span));
            }
        }

        return new Contents(serials, thisUpdate, nextUpdate);
    }

    private static void VerifySignature(byte[] signed, byte[] signature, string oid, X509Certificate2 issuer)
    {
        var hash = oid switch
        {
            "1.2.840.10045.4.3.2" or "1.2.840.113549.1.1.11" => HashAlgorithmName.SHA256,
            "1.2.840.10045.4.3.3" or "1.2.840.113549.1.1.12" => HashAlgorithmName.SHA384,
            "1.2.840.10045.4.3.4" or "1.2.840.113549.1.1.13" => HashAlgorithmName.SHA512,
            _ => throw new PkiException($"the CRL's signature algorithm {oid} is not supported (use ECDSA or RSA PKCS#1 with SHA-256/384/512)"),
        };

        bool valid;
        if (oid.StartsWith("1.2.840.10045.", StringComparison.Ordinal))
        {
            using var key = issuer.GetECDsaPublicKey() ?? throw new PkiException($"the CRL is signed with ECDSA but the CA '{issuer.Subject}' has no ECDSA key");
            valid = key.VerifyData(signed, signature, hash, DSASignatureFormat.Rfc3279DerSequence);
        }
        else
        {
            using var key = issuer.GetRSAPublicKey() ?? throw new PkiException($"the CRL is signed with RSA but the CA '{issuer.Subject}' has no RSA key");
            valid = key.VerifyData(signed, signature, hash, RSASignaturePadding.Pkcs1);
        }

        if (!valid)
        {
            throw new PkiException($"the CRL's signature does not verify with the key of the CA '{issuer.Subject}'");
        }
    }

    private static bool IsTime(Asn1Tag tag) => tag.HasSameClassAndValue(Asn1Tag.UtcTime) || tag.HasSameClassAndValue(Asn1Tag.GeneralizedTime);

    private static DateTimeOffset ReadTime(AsnReader reader)
        => reader.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) ? reader.ReadUtcTime() : reader.ReadGeneralizedTime();
}
