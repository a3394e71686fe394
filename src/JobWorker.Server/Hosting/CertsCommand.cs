using JobWorker.Pki;

namespace JobWorker.Server.Hosting;

/// <summary>
/// <c>JobWorker.Server certs init --dir DIR [--client USER:ROLE]... [--server-name NAME]... [--force]</c>:
/// creates a development PKI with <see cref="DevPki"/> (the CLI's <c>worker certs init</c> does the same).
/// </summary>
public static class CertsCommand
{
    private const string Usage = """
        usage: JobWorker.Server certs init --dir DIR [--client USER:ROLE]... [--server-name NAME]... [--force]
          --dir DIR             directory to create (0700); keys are written 0600
          --client USER:ROLE    a client certificate; ROLE is admin or user (default: admin:admin, alice:user, bob:user)
          --server-name NAME    an extra DNS name or IP address for the server certificate
                                (localhost, 127.0.0.1, ::1 and the host name are always included)
          --force               replace an existing PKI in DIR
        """;

    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (args.Length == 0 || args[0] != "init")
        {
            error.WriteLine(Usage);
            return 2;
        }

        string? directory = null;
        var clients = new List<ClientIdentity>();
        var names = new List<string>();
        var force = false;
        for (var i = 1; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--dir" when value is not null:
                    directory = value;
                    i++;
                    break;
                case "--client" when value is not null:
                    var parts = value.Split(':');
                    var problem = parts.Length == 2 ? ClientIdentity.Validate(parts[0], parts[1]) : $"'{value}' is not USER:ROLE";
                    if (problem is not null)
                    {
                        error.WriteLine($"certs init: --client: {problem}");
                        return 2;
                    }

                    clients.Add(new ClientIdentity(parts[0], parts[1]));
                    i++;
                    break;
                case "--server-name" when value is not null:
                    names.Add(value);
                    i++;
                    break;
                case "--force":
                    force = true;
                    break;
                default:
                    error.WriteLine($"certs init: unexpected '{args[i]}'");
                    error.WriteLine(Usage);
                    return 2;
            }
        }

        if (directory is null)
        {
            error.WriteLine("certs init: --dir is required");
            return 2;
        }

        if (clients.Count == 0)
        {
            clients.AddRange([new("admin", Roles.Admin), new("alice", Roles.User), new("bob", Roles.User)]);
        }

        try
        {
            var layout = DevPki.Create(directory, clients, new DevPkiOptions { ServerNames = names, Overwrite = force });
            output.WriteLine($"created a development PKI in {layout.Directory}:");
            output.WriteLine($"  CA:     {layout.CaCertificate}  (key {layout.CaKey})");
            output.WriteLine($"  server: {layout.ServerCertificate}  (key {layout.ServerKey})");
            foreach (var client in clients)
            {
                output.WriteLine($"  {client.User} ({client.Role}): {layout.ClientCertificate(client.User)}  (key {layout.ClientKey(client.User)})");
            }

            return 0;
        }
        catch (Exception e) when (e is PkiException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"certs init: {e.Message}");
            return 1;
        }
    }
}
