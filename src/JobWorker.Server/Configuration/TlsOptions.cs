namespace JobWorker.Server.Configuration;

/// <summary>
/// Certificate reloading and revocation, bound from <c>JobWorker:Tls</c>. The certificate, key and CA files
/// themselves are <see cref="ServerOptions.ServerCertificate"/>, <see cref="ServerOptions.ServerKey"/> and
/// <see cref="ServerOptions.CaCertificate"/>. See docs/security.md.
/// </summary>
public sealed class TlsOptions
{
    public const string Section = ServerOptions.Section + ":Tls";

    /// <summary>A text file of revoked client certificate serial numbers in hexadecimal, one a line (<c>#</c> starts a
    /// comment; colons and spaces inside a number are ignored). Empty: none.</summary>
    public string RevokedSerialsFile { get; set; } = "";

    /// <summary>An X.509 CRL (PEM or DER) issued and signed by the CA; its serial numbers are refused. Empty: none.</summary>
    public string RevocationListFile { get; set; } = "";

    /// <summary>
    /// How often the server compares the certificate, key, CA and revocation files with what it loaded, in addition
    /// to watching their directories for changes. A revoked client's open connections are closed at most this long
    /// (plus a moment to read the files) after the revocation is written, even when the change notification is missed.
    /// </summary>
    public TimeSpan ReloadCheckInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Every problem with these settings, each naming the setting; empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (ReloadCheckInterval < TimeSpan.FromMilliseconds(100) || ReloadCheckInterval > TimeSpan.FromHours(1))
        {
            errors.Add($"{Section}:ReloadCheckInterval must be between 00:00:00.100 and 01:00:00 (is {ReloadCheckInterval})");
        }

        return errors;
    }
}
