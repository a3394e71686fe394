using System.Security.Cryptography;

namespace JobWorker.Pki;

/// <summary>Extended key usage object identifiers (RFC 5280 section 4.2.1.12).</summary>
public static class Oids
{
    /// <summary>TLS web server authentication.</summary>
    public const string ServerAuthentication = "1.3.6.1.5.5.7.3.1";

    /// <summary>TLS web client authentication.</summary>
    public const string ClientAuthentication = "1.3.6.1.5.5.7.3.2";

    internal static Oid ServerAuth => new(ServerAuthentication, "Server Authentication");

    internal static Oid ClientAuth => new(ClientAuthentication, "Client Authentication");
}
