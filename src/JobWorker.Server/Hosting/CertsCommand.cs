using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using JobWorker.Pki;

namespace JobWorker.Server.Hosting;

/// <summary>
/// <c>JobWorker.Server certs init --dir DIR [--client USER:ROLE]... [--server-name NAME]... [--force]</c>:
/// creates a development PKI with <see cref="DevPki"/> (the CLI's <c>worker certs init</c> does the same). Parsed
/// with System.CommandLine from the options both commands share (<see cref="CertsInitOptions"/>).
/// </summary>
public static class CertsCommand
{
    private const string Name = "JobWorker.Server";

    /// <summary>Runs <c>certs</c> with <paramref name="args"/> (what follows <c>certs</c>).</summary>
    /// <returns>0 when the PKI was created (or help shown), 1 when it could not be written, 2 for a usage error.</returns>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);

        var directory = CertsInitOptions.Directory("Directory to create (0700); keys are written 0600");
        directory.Required = true;
        var clients = CertsInitOptions.Clients();
        clients.Description += $" [default: admin:{Roles.Admin}, alice:{Roles.User}, bob:{Roles.User}]";
        var serverNames = CertsInitOptions.ServerNames();
        var force = CertsInitOptions.Force("Replace an existing PKI in DIR");
        var init = new Command("init", "Create a development PKI: a CA, a server certificate and client certificates") { directory, clients, serverNames, force };
        init.SetAction(parseResult => Init(
            parseResult.GetRequiredValue(directory)!,
            parseResult.GetRequiredValue(clients),
            parseResult.GetRequiredValue(serverNames),
            parseResult.GetValue(force),
            output,
            error));
        var root = new Command(Name) { new Command("certs", "Manage the development PKI") { init } };
        root.Options.Add(new HelpOption { Recursive = true });

        var parseResult = root.Parse(["certs", .. args]);
        if (parseResult.Errors.Count > 0 && parseResult.Action is ParseErrorAction or null)
        {
            var verb = string.Join(' ', Names(parseResult.CommandResult));
            foreach (var problem in parseResult.Errors)
            {
                error.WriteLine($"{verb}: {problem.Message}");
            }

            error.WriteLine($"Run '{verb} --help' for usage.");
            return 2;
        }

        return parseResult.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
    }

    private static IEnumerable<string> Names(System.CommandLine.Parsing.CommandResult? result)
        => result is null ? [] : Names(result.Parent as System.CommandLine.Parsing.CommandResult).Append(result.Command.Name);

    private static int Init(string directory, ClientIdentity[] clients, string[] serverNames, bool force, TextWriter output, TextWriter error)
    {
        if (clients.Length == 0)
        {
            clients = [new("admin", Roles.Admin), new("alice", Roles.User), new("bob", Roles.User)];
        }

        try
        {
            var layout = DevPki.Create(directory, clients, new DevPkiOptions { ServerNames = serverNames, Overwrite = force });
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
            error.WriteLine($"{Name} certs init: {e.Message}");
            return 1;
        }
    }
}
