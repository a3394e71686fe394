using JobWorker.Cli.Infrastructure;
using JobWorker.Pki;

namespace JobWorker.Cli.Connection;

/// <summary>
/// The client configs <c>worker certs init</c> leaves behind: in <c>client.json</c> a context for the user and one for
/// the admin (the user's current, and the user's settings at the top level too, for readers that know no contexts), and
/// <c>admin.json</c> with the admin's settings. Contexts of other names already in <c>client.json</c> are kept.
/// </summary>
internal static class DevPkiContexts
{
    public static void Write(string userConfig, string adminConfig, Uri server, DevPkiLayout layout, string user, string admin)
    {
        var serverText = server.ToString().TrimEnd('/');
        ClientContext For(string name) => new()
        {
            Server = serverText,
            Cert = layout.ClientCertificate(name),
            Key = layout.ClientKey(name),
            Ca = layout.CaCertificate,
        };

        var userEntries = For(user);
        ClientConfigFile.Update(userConfig, create: true, config =>
        {
            config.Server = userEntries.Server;
            config.Cert = userEntries.Cert;
            config.Key = userEntries.Key;
            config.Ca = userEntries.Ca;
            config.Contexts ??= new(StringComparer.Ordinal);
            config.Contexts[user] = userEntries;
            config.Contexts[admin] = For(admin);
            config.CurrentContext = user;
        }, load: LoadOrReplace);

        var adminEntries = For(admin);
        ClientConfigFile.Save(adminConfig, new ClientConfig { Server = adminEntries.Server, Cert = adminEntries.Cert, Key = adminEntries.Key, Ca = adminEntries.Ca });
    }

    // Only reached with --force (an existing file is refused otherwise): an unreadable file is replaced.
    private static ClientConfig LoadOrReplace(string path)
    {
        try
        {
            return ClientConfigFile.LoadOrEmpty(path);
        }
        catch (CliException)
        {
            return new ClientConfig();
        }
    }
}
