using System.CommandLine;

namespace JobWorker.Pki;

/// <summary>
/// The options of <c>certs init</c>, defined once for <c>worker certs init</c> and <c>JobWorker.Server certs init</c>
/// so that both parse them with System.CommandLine alike (names, arity, value names, validation). Each returns a new
/// option: a System.CommandLine option belongs to one command.
/// </summary>
public static class CertsInitOptions
{
    /// <summary><c>--dir DIR</c>: where the PKI is written.</summary>
    /// <param name="description">What the command does with it (and its default, if any).</param>
    public static Option<string?> Directory(string description) => new("--dir")
    {
        Description = description,
        HelpName = "DIR",
    };

    /// <summary><c>--server-name NAME</c>, repeatable: <see cref="DevPkiOptions.ServerNames"/>.</summary>
    public static Option<string[]> ServerNames() => new("--server-name")
    {
        Description = "Extra DNS name or IP address for the server certificate (localhost, 127.0.0.1, ::1 and the host name are always included), repeatable",
        HelpName = "NAME",
        Arity = ArgumentArity.ZeroOrMore,
        AllowMultipleArgumentsPerToken = false,
        DefaultValueFactory = _ => [],
    };

    /// <summary><c>--client USER:ROLE</c>, repeatable: a client certificate, validated by <see cref="ClientIdentity.Validate"/>.</summary>
    public static Option<ClientIdentity[]> Clients() => new("--client")
    {
        Description = $"A client certificate for USER with ROLE ({Roles.Admin} or {Roles.User}), repeatable",
        HelpName = "USER:ROLE",
        Arity = ArgumentArity.ZeroOrMore,
        AllowMultipleArgumentsPerToken = false,
        DefaultValueFactory = _ => [],
        CustomParser = result =>
        {
            var clients = new List<ClientIdentity>();
            foreach (var token in result.Tokens)
            {
                var parts = token.Value.Split(':');
                var problem = parts.Length == 2 ? ClientIdentity.Validate(parts[0], parts[1]) : $"'{token.Value}' is not USER:ROLE";
                if (problem is not null)
                {
                    result.AddError($"--client: {problem}");
                    return [];
                }

                clients.Add(new ClientIdentity(parts[0], parts[1]));
            }

            return [.. clients];
        },
    };

    /// <summary><c>--force</c>: <see cref="DevPkiOptions.Overwrite"/>.</summary>
    /// <param name="description">What it replaces.</param>
    public static Option<bool> Force(string description) => new("--force") { Description = description };
}
