using System.CommandLine;
using System.Text;
using JobWorker.Cli.Connection;
using JobWorker.Cli.Formatting;
using JobWorker.Cli.Infrastructure;
using JobWorker.Pki;

namespace JobWorker.Cli.Commands;

/// <summary>
/// <c>worker certs init</c>: creates the development PKI (CA, server certificate, a user's and an admin's
/// client certificates) and a client config for each, so that afterwards no connection flags are needed.
/// </summary>
internal sealed class CertsInitCommand : VerbCommand
{
    private readonly Option<string?> _dir = CertsInitOptions.Directory("Where to write the PKI [default: ~/.config/jobworker/pki]");

    private readonly Option<string> _user = new("--user")
    {
        Description = "Name of the ordinary user's client certificate",
        HelpName = "NAME",
        DefaultValueFactory = _ => "user",
    };

    private readonly Option<string> _admin = new("--admin")
    {
        Description = "Name of the admin's client certificate",
        HelpName = "NAME",
        DefaultValueFactory = _ => "admin",
    };

    private readonly Option<string[]> _serverNames = CertsInitOptions.ServerNames();

    private readonly Option<string?> _configDir = new("--config-dir")
    {
        Description = "Where to write client.json (the user) and admin.json [default: ~/.config/jobworker]",
        HelpName = "DIR",
    };

    private readonly Option<bool> _force = CertsInitOptions.Force("Replace an existing PKI and client configs");

    public CertsInitCommand(CliContext context)
        : base("init", "Create a development PKI (CA, server and client certificates) and client configs", context)
    {
        Options.Add(_dir);
        Options.Add(_user);
        Options.Add(_admin);
        Options.Add(_serverNames);
        Options.Add(_configDir);
        Options.Add(_force);
    }

    protected override Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        var configDir = Path.GetFullPath(parseResult.GetValue(_configDir) ?? Path.GetDirectoryName(ConnectionSettings.DefaultConfigPath)!);
        var pkiDir = Path.GetFullPath(parseResult.GetValue(_dir) ?? Path.Combine(configDir, "pki"));
        var user = parseResult.GetRequiredValue(_user);
        var admin = parseResult.GetRequiredValue(_admin);
        var force = parseResult.GetValue(_force);
        foreach (var (name, role) in new[] { (user, Roles.User), (admin, Roles.Admin) })
        {
            if (ClientIdentity.Validate(name, role) is { } error)
            {
                throw new CliException(error, ExitCodes.Usage);
            }
        }

        if (string.Equals(user, admin, StringComparison.Ordinal))
        {
            throw new CliException("--user and --admin must be different names", ExitCodes.Usage);
        }

        var server = parseResult.GetValue(Context.Globals.Server) ?? Environment.GetEnvironmentVariable("WORKER_SERVER") ?? ConnectionSettings.DefaultServer;
        var serverUri = ConnectionSettings.ParseServer(server);

        var userConfig = Path.Combine(configDir, "client.json");
        var adminConfig = Path.Combine(configDir, "admin.json");
        foreach (var path in new[] { userConfig, adminConfig })
        {
            if (File.Exists(path) && !force)
            {
                throw new CliException($"{path} exists already: pass --force to replace it (and the PKI), or --config-dir to write elsewhere");
            }
        }

        var extraNames = parseResult.GetValue(_serverNames) ?? [];
        DevPkiLayout layout;
        try
        {
            layout = DevPki.Create(
                pkiDir,
                [new ClientIdentity(user, Roles.User), new ClientIdentity(admin, Roles.Admin)],
                new DevPkiOptions { Overwrite = force, ServerNames = [.. extraNames, serverUri.Host] });
        }
        catch (PkiException ex)
        {
            throw new CliException($"{ex.Message.TrimEnd('.')} (pass --force to replace it)");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot write the PKI to {pkiDir}: {ex.Message}");
        }

        Directory.CreateDirectory(configDir, PemFiles.DirectoryMode);
        DevPkiContexts.Write(userConfig, adminConfig, serverUri, layout, user, admin);

        var sb = new StringBuilder();
        sb.Append("Created a development PKI in ").Append(layout.Directory).Append('\n');
        sb.Append("  CA certificate:      ").Append(layout.CaCertificate).Append('\n');
        sb.Append("  server certificate:  ").Append(layout.ServerCertificate).Append(" (key ").Append(layout.ServerKey).Append(")\n");
        sb.Append("  user '").Append(user).Append("':  context '").Append(user).Append("' in ").Append(userConfig).Append(" (the current context)\n");
        sb.Append("  admin '").Append(admin).Append("': context '").Append(admin).Append("' (use with --context ").Append(admin).Append("), or config ").Append(adminConfig).Append('\n');
        WriteStdout(TerminalText.Escape(sb.ToString(), keepLineFeeds: true));
        return Task.FromResult(ExitCodes.Success);
    }
}
