namespace JobWorker.Pki;

/// <summary>
/// Where the files of a development PKI live inside its directory:
/// <code>
/// ca.crt  ca.key                       the CA (keep ca.key to issue more client certificates)
/// server.crt  server.key               the server's certificate
/// clients/&lt;user&gt;.crt  clients/&lt;user&gt;.key   one pair per client user
/// </code>
/// </summary>
/// <param name="Directory">The PKI directory (mode 0700).</param>
public sealed record DevPkiLayout(string Directory)
{
    /// <summary>The CA certificate: the server and clients trust exactly this.</summary>
    public string CaCertificate => Path.Combine(Directory, "ca.crt");

    /// <summary>The CA private key (0600).</summary>
    public string CaKey => Path.Combine(Directory, "ca.key");

    /// <summary>The server certificate.</summary>
    public string ServerCertificate => Path.Combine(Directory, "server.crt");

    /// <summary>The server private key (0600).</summary>
    public string ServerKey => Path.Combine(Directory, "server.key");

    /// <summary>The directory holding client certificates (0700).</summary>
    public string ClientsDirectory => Path.Combine(Directory, "clients");

    /// <summary>A client's certificate path.</summary>
    public string ClientCertificate(string user) => Path.Combine(ClientsDirectory, CheckedUser(user) + ".crt");

    /// <summary>A client's private key path (0600).</summary>
    public string ClientKey(string user) => Path.Combine(ClientsDirectory, CheckedUser(user) + ".key");

    private static string CheckedUser(string user)
    {
        // The user name becomes a path component: the identity rules keep it free of '/' and "..".
        var error = ClientIdentity.Validate(user, Roles.User);
        return error is null ? user : throw new ArgumentException(error, nameof(user));
    }
}
