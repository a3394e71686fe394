using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using JobWorker.Server.Configuration;

namespace JobWorker.Server.Hosting;

/// <summary>
/// The server's command line before the host sees it: <c>--help</c>, <c>--version</c>, the <c>certs</c> verb, and a
/// check that every other argument is configuration the host will read.
/// </summary>
/// <remarks>
/// Running the server, the command line is ASP.NET Core configuration (<c>--Key value</c>, <c>--Key=value</c>,
/// <c>/Key value</c>, <c>Key=value</c>, plus <see cref="ServerApp.SwitchMappings"/>), parsed by the host's
/// command-line provider, which silently ignores what it cannot read (a word such as <c>start</c>, a single-dash
/// switch, a flag without a value) and takes any other <c>--name</c> as a top-level key nothing reads (a misspelt
/// <c>--lisen</c>). This walks the arguments with the provider's grammar and refuses those instead, so a typo is
/// an error rather than a setting quietly not applied.
/// </remarks>
internal static class ServerCommandLine
{
    private const string Name = "JobWorker.Server";

    // The host's own settings, also read from the command line (WebApplicationOptions/HostDefaults).
    private static readonly HashSet<string> HostKeys = new(StringComparer.OrdinalIgnoreCase) { "environment", "applicationName", "contentRoot" };

    private static readonly Dictionary<string, (string Value, string Description)> Flags = new(StringComparer.Ordinal)
    {
        ["--listen"] = ("IP:PORT", "gRPC endpoint with mutual TLS: IP:port, [IPv6]:port or localhost:port (default 127.0.0.1:50051)"),
        ["--ca"] = ("FILE", "the CA client certificates must chain to (default /etc/jobworker/pki/ca.crt)"),
        ["--cert"] = ("FILE", "the server certificate (default /etc/jobworker/pki/server.crt)"),
        ["--key"] = ("FILE", "its private key, mode 0600 (default /etc/jobworker/pki/server.key)"),
        ["--cgroup-root"] = ("DIR", "cgroup v2 directory the runner owns (default <cgroup2 mount>/jobworker)"),
        ["--delegated-cgroup"] = ("BOOL", "use the service's own delegated cgroup (systemd Delegate=yes)"),
        ["--state-dir"] = ("DIR", "jobs' records and output logs (default /var/lib/jobworker)"),
        ["--stop-jobs-on-shutdown"] = ("BOOL", "stop every job at shutdown instead of leaving them to the next server"),
        ["--job-user"] = ("USER", "the account of every job with --identity SharedAccount (default nobody)"),
        ["--job-group"] = ("GROUP", "its group (default nogroup)"),
        ["--identity"] = ("MODE", "PerOwner (a uid per certificate user, the default) or SharedAccount"),
        ["--id-range"] = ("FIRST-LAST", "uids/gids allocated to users (default 61184-65519)"),
        ["--user-dir-root"] = ("DIR", "where each user's private directory is created (default /var/lib/jobworker-users)"),
        ["--grace"] = ("HH:MM:SS", "SIGTERM to SIGKILL grace of a stop without one (default 00:00:10)"),
        ["--max-running-jobs"] = ("N", "running jobs per user, 0 = no cap (default 100)"),
        ["--default-isolation"] = ("LIST", "namespaces of requests that do not choose: None or Pid, Mount, Network, Ipc, Uts"),
        ["--required-isolation"] = ("LIST", "namespaces every job gets whatever it asks (default Pid, Mount, Ipc, Uts)"),
        ["--metrics-listen"] = ("IP:PORT", "loopback address for Prometheus metrics at /metrics (default off)"),
    };

    /// <summary>The descriptions of the flags in <see cref="ServerApp.SwitchMappings"/> (a flag without one shows its setting only).</summary>
    public static IReadOnlyDictionary<string, (string Value, string Description)> FlagHelp => Flags;

    /// <summary>
    /// Handles what is not running the server. Returns the exit status (0 after help or the version, the
    /// <c>certs</c> verb's, 2 for an argument the server does not take), or null: run the server.
    /// </summary>
    public static int? Handle(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (args.Length > 0 && args[0] == "certs")
        {
            return CertsCommand.Run(args[1..], output, error);
        }

        for (var i = 0; i < args.Length; i++)
        {
            var token = args[i];
            switch (token)
            {
                case "-h" or "--help" or "-?":
                    output.Write(Help());
                    return 0;
                case "--version":
                    output.WriteLine(Version());
                    return 0;
            }

            var problem = Check(args, ref i);
            if (problem is not null)
            {
                error.WriteLine($"{Name}: {problem}; see '{Name} --help'");
                return 2;
            }
        }

        return null;
    }

    /// <summary>The version line: the product's informational version and the runtime's.</summary>
    public static string Version()
    {
        var version = typeof(ServerCommandLine).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
        return $"{Name} {version} ({RuntimeInformation.FrameworkDescription})";
    }

    /// <summary>The <c>--help</c> text.</summary>
    public static string Help()
    {
        var help = new StringBuilder();
        help.Append($"""
            usage: {Name} [--FLAG VALUE | --JobWorker:SETTING=VALUE]...
                   {Name} certs init --dir DIR [--client USER:ROLE]... [--server-name NAME]... [--force]
                   {Name} --help | --version

            Runs the JobWorker service: a gRPC API with mutual TLS that starts, stops and streams Linux processes
            (jobs) in cgroup v2 groups. Runs as root; under systemd use packaging/systemd/jobworker.service.

            Settings are read from appsettings.json next to the binary, then {ServerApp.SystemConfigFile},
            then environment variables JOBWORKER__<SETTING>, then the command line (later wins).

            Flags:

            """);
        foreach (var (flag, setting) in ServerApp.SwitchMappings)
        {
            var (value, description) = Flags.GetValueOrDefault(flag, ("VALUE", string.Empty));
            help.Append($"  {flag + " " + value,-36}{setting}\n");
            if (description.Length > 0)
            {
                help.Append($"  {string.Empty,-36}{description}\n");
            }
        }

        help.Append($"""

            Any other setting: --JobWorker:<Setting>=VALUE or --JobWorker:<Setting> VALUE, for example
            --JobWorker:MaxArguments=1024 or --RateLimits:User:StartJobBurst 50; logging: --Logging:LogLevel:Default=Debug.

            Commands:
              certs init    create a development PKI: CA, server and client certificates ('{Name} certs init --help')

            Documentation (in the JobWorker source and package): docs/operations.md (every setting, systemd, metrics,
            shutdown), docs/security.md (certificates, roles), docs/design-durability.md (restarts).

            """);
        return help.ToString();
    }

    /// <summary>
    /// Checks the argument at <paramref name="i"/> as the host's command-line provider would read it, moving past
    /// its value. Returns why the host could not use it, or null.
    /// </summary>
    private static string? Check(string[] args, ref int i)
    {
        var token = args[i];
        string key;
        if (token.StartsWith("--", StringComparison.Ordinal) || (token.StartsWith('/') && token.Length > 1))
        {
            key = token.TrimStart('-', '/');
        }
        else if (token.StartsWith('-') && token.Length > 1)
        {
            return $"unknown option '{token}'";
        }
        else if (token.Contains('=', StringComparison.Ordinal) && token.IndexOf(':', StringComparison.Ordinal) is > 0 and var colon && colon < token.IndexOf('=', StringComparison.Ordinal))
        {
            // Key=value without a prefix: the provider takes it as a configuration path (flags need their dashes).
            key = token;
        }
        else
        {
            return $"unexpected argument '{token}': the only command is 'certs'";
        }

        var equals = key.IndexOf('=', StringComparison.Ordinal);
        var name = equals >= 0 ? key[..equals] : key;
        if (name.Length == 0)
        {
            return $"unexpected argument '{token}'";
        }

        if (!Switches(name) && !name.Contains(':', StringComparison.Ordinal) && !HostKeys.Contains(name))
        {
            var flag = ServerApp.SwitchMappings.Keys.FirstOrDefault(f => string.Equals(f, "--" + name, StringComparison.OrdinalIgnoreCase));
            return flag is not null
                ? $"unknown option '{token}' (did you mean '{flag}'?)"
                : typeof(ServerOptions).GetProperty(name, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase) is { } property
                    ? $"unknown option '{token}' (the setting is '--{ServerOptions.Section}:{property.Name}')"
                    : $"unknown option '{token}'";
        }

        if (equals < 0)
        {
            // The provider takes the next argument as the value, whatever it is: "--grace --listen x" would set
            // the grace to "--listen".
            if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                return $"option '{token}' needs a value";
            }

            i++;
        }

        return null;
    }

    private static bool Switches(string name) => ServerApp.SwitchMappings.ContainsKey("--" + name);
}
