using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace JobWorker.Pki;

/// <summary>
/// Creates and extends a development PKI in one directory: a CA, a server certificate for the local names and
/// client certificates for named users with a role. See <see cref="DevPkiLayout"/> for the files.
/// </summary>
/// <example>
/// <code>
/// var layout = DevPki.Create("/etc/jobworker/pki", [new ClientIdentity("alice", Roles.Admin), new ClientIdentity("bob", Roles.User)]);
/// using var alice = PemFiles.LoadCertificateWithKey(layout.ClientCertificate("alice"), layout.ClientKey("alice"));
/// </code>
/// </example>
public static class DevPki
{
    /// <summary>
    /// Creates a new PKI: the directory (0700), the CA, the server certificate and one client certificate per
    /// identity. Keys are written 0600.
    /// </summary>
    /// <exception cref="ArgumentException">An identity is invalid or a user appears twice.</exception>
    /// <exception cref="PkiException">A PKI exists already (and <see cref="DevPkiOptions.Overwrite"/> is false).</exception>
    public static DevPkiLayout Create(string directory, IEnumerable<ClientIdentity> clients, DevPkiOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(clients);
        options ??= new DevPkiOptions();
        var identities = clients.ToList();
        foreach (var identity in identities)
        {
            var error = ClientIdentity.Validate(identity.User, identity.Role);
            if (error is not null)
            {
                throw new ArgumentException(error, nameof(clients));
            }
        }

        var duplicate = identities.GroupBy(i => i.User, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"user '{duplicate.Key}' is listed more than once", nameof(clients));
        }

        var layout = new DevPkiLayout(Path.GetFullPath(directory));
        if (File.Exists(layout.CaKey) && !options.Overwrite)
        {
            throw new PkiException($"A PKI already exists in '{layout.Directory}' ({layout.CaKey}); remove it or ask to overwrite it.");
        }

        CreatePrivateDirectory(layout.Directory);
        CreatePrivateDirectory(layout.ClientsDirectory);

        using var ca = CertificateAuthority.Create(options: new CertificateOptions { Lifetime = options.CaLifetime });
        PemFiles.WriteCertificate(ca.Certificate, layout.CaCertificate);
        PemFiles.WritePrivateKey(ca.Certificate, layout.CaKey);

        var (dns, ips) = ServerNames(options.ServerNames);
        using (var server = ca.IssueServer(dns, ips, new CertificateOptions { Lifetime = options.CertificateLifetime }))
        {
            PemFiles.WriteCertificate(server, layout.ServerCertificate);
            PemFiles.WritePrivateKey(server, layout.ServerKey);
        }

        foreach (var identity in identities)
        {
            WriteClient(ca, layout, identity, new CertificateOptions { Lifetime = options.CertificateLifetime });
        }

        return layout;
    }

    /// <summary>Issues one more client certificate with the CA of an existing PKI (replacing that user's pair).</summary>
    /// <exception cref="PkiException">The directory holds no CA, or it cannot be read.</exception>
    public static DevPkiLayout AddClient(string directory, ClientIdentity identity, CertificateOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(identity);
        var error = ClientIdentity.Validate(identity.User, identity.Role);
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(identity));
        }

        var layout = new DevPkiLayout(Path.GetFullPath(directory));
        if (!File.Exists(layout.CaKey))
        {
            throw new PkiException($"No CA in '{layout.Directory}' (missing {layout.CaKey}); create the PKI first.");
        }

        CreatePrivateDirectory(layout.ClientsDirectory);
        using var ca = CertificateAuthority.Load(layout.CaCertificate, layout.CaKey);
        WriteClient(ca, layout, identity, options ?? new CertificateOptions());
        return layout;
    }

    /// <summary>The names a server certificate gets by default: localhost, 127.0.0.1, ::1 and the host name.</summary>
    public static (IReadOnlyList<string> DnsNames, IReadOnlyList<IPAddress> IpAddresses) ServerNames(IEnumerable<string> extra)
    {
        ArgumentNullException.ThrowIfNull(extra);
        var dns = new List<string> { "localhost" };
        var ips = new List<IPAddress> { IPAddress.Loopback, IPAddress.IPv6Loopback };
        var host = Dns.GetHostName();
        if (!string.IsNullOrEmpty(host))
        {
            dns.Add(host);
        }

        foreach (var name in extra)
        {
            if (IPAddress.TryParse(name, out var ip))
            {
                ips.Add(ip);
            }
            else if (!string.IsNullOrWhiteSpace(name))
            {
                dns.Add(name.Trim());
            }
        }

        return (dns.Distinct(StringComparer.OrdinalIgnoreCase).ToList(), ips.Distinct().ToList());
    }

    private static void WriteClient(CertificateAuthority ca, DevPkiLayout layout, ClientIdentity identity, CertificateOptions options)
    {
        using X509Certificate2 client = ca.IssueClient(identity, options);
        PemFiles.WriteCertificate(client, layout.ClientCertificate(identity.User));
        PemFiles.WritePrivateKey(client, layout.ClientKey(identity.User));
    }

    private static void CreatePrivateDirectory(string path)
    {
        if (!Directory.Exists(path))
        {
            Directory.CreateDirectory(path, PemFiles.DirectoryMode);
        }

        // An existing directory is narrowed too: it holds private keys.
        File.SetUnixFileMode(path, PemFiles.DirectoryMode);
    }
}
