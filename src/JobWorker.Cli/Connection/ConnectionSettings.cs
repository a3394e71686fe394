using JobWorker.Cli.Infrastructure;
using JobWorker.Cli.Parsing;

namespace JobWorker.Cli.Connection;

/// <summary>
/// Where and how to connect: each value comes from its flag, else its environment variable
/// (WORKER_SERVER, WORKER_CERT, WORKER_KEY, WORKER_CA, WORKER_CONNECT_TIMEOUT, WORKER_RECONNECT_TIMEOUT), else the selected
/// context of the config file (--context, WORKER_CONTEXT, or the file's currentContext), else the file's top-level key,
/// else the default.
/// </summary>
internal sealed record ConnectionSettings(
    Uri Server, string? CertPath, string? KeyPath, string? CaPath, string? ConfigPath, TimeSpan ConnectTimeout, TimeSpan ReconnectTimeout)
{
    public const string DefaultServer = "https://127.0.0.1:50051";

    /// <summary>
    /// The time to get a connection up, retries included. Generous on purpose: a burst of clients on a busy
    /// machine can take seconds per TLS handshake, and only an unreachable server should ever wait it out.
    /// </summary>
    public static readonly TimeSpan DefaultConnectTimeout = TimeSpan.FromSeconds(30);

    public static readonly TimeSpan MaxConnectTimeout = TimeSpan.FromHours(1);

    /// <summary>
    /// How long a follower (<c>logs -f</c>, <c>run</c>) whose stream broke keeps trying to get it back: long enough
    /// for a server to be restarted or upgraded, short enough that a script notices a server that stays down.
    /// </summary>
    public static readonly TimeSpan DefaultReconnectTimeout = TimeSpan.FromSeconds(60);

    public static readonly TimeSpan MaxReconnectTimeout = TimeSpan.FromDays(1);

    /// <summary>The server address as shown in messages.</summary>
    public string ServerText => Server.ToString().TrimEnd('/');

    public static string DefaultConfigPath
    {
        get
        {
            var configHome = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
            if (string.IsNullOrEmpty(configHome))
            {
                configHome = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
            }

            return Path.Combine(configHome, "jobworker", "client.json");
        }
    }

    public static ConnectionSettings Resolve(string? server, string? cert, string? key, string? ca, string? config, TimeSpan? connectTimeout = null, TimeSpan? reconnectTimeout = null, string? context = null)
    {
        var (configPath, explicitConfig) = ClientConfigFile.Locate(config);
        ClientConfig? file = null;
        if (File.Exists(configPath))
        {
            file = ClientConfigFile.Load(configPath);
        }
        else if (explicitConfig)
        {
            throw new CliException($"config file {configPath} does not exist: check --config / WORKER_CONFIG, or create one with 'worker certs init' or 'worker context add'");
        }

        var selected = SelectContext(file, configPath, context);
        var configDir = Path.GetDirectoryName(Path.GetFullPath(configPath)) ?? ".";
        string? FromFile(Func<IConnectionEntries, string?> entry)
            => FirstNonEmpty(selected is null ? null : entry(selected), file is null ? null : entry(file)) is { } value ? Path.GetFullPath(value, configDir) : null;
        string? RawFromFile(Func<IConnectionEntries, string?> entry, out string source)
        {
            if (selected is not null && !string.IsNullOrWhiteSpace(entry(selected)))
            {
                source = $"context '{selected.Name}' in config file {configPath}";
                return entry(selected);
            }

            source = $"config file {configPath}";
            return file is null ? null : entry(file);
        }

        var serverText = FirstNonEmpty(server, Environment.GetEnvironmentVariable("WORKER_SERVER"), RawFromFile(e => e.Server, out _)) ?? DefaultServer;
        var connectFromFile = RawFromFile(e => e.ConnectTimeout, out var connectSource);
        var reconnectFromFile = RawFromFile(e => e.ReconnectTimeout, out var reconnectSource);
        return new ConnectionSettings(
            ParseServer(serverText),
            FirstNonEmpty(cert, Environment.GetEnvironmentVariable("WORKER_CERT")) ?? FromFile(e => e.Cert),
            FirstNonEmpty(key, Environment.GetEnvironmentVariable("WORKER_KEY")) ?? FromFile(e => e.Key),
            FirstNonEmpty(ca, Environment.GetEnvironmentVariable("WORKER_CA")) ?? FromFile(e => e.Ca),
            file is null ? null : configPath,
            ResolveTimeout(connectTimeout, "WORKER_CONNECT_TIMEOUT", connectFromFile, "connectTimeout", connectSource, CheckConnectTimeout) ?? DefaultConnectTimeout,
            ResolveTimeout(reconnectTimeout, "WORKER_RECONNECT_TIMEOUT", reconnectFromFile, "reconnectTimeout", reconnectSource, CheckReconnectTimeout) ?? DefaultReconnectTimeout);
    }

    /// <summary>The context named by --context, else WORKER_CONTEXT, else the file's currentContext (none when none names one).</summary>
    public static NamedContext? SelectContext(ClientConfig? file, string configPath, string? flag)
    {
        var (name, source, exitCode) = !string.IsNullOrWhiteSpace(flag) ? (flag, "--context", ExitCodes.Usage)
            : Environment.GetEnvironmentVariable("WORKER_CONTEXT") is { } fromEnvironment && !string.IsNullOrWhiteSpace(fromEnvironment) ? (fromEnvironment, "WORKER_CONTEXT", ExitCodes.Usage)
            : (file?.CurrentContext, $"\"currentContext\" in config file {configPath}", ExitCodes.Failure);
        if (string.IsNullOrWhiteSpace(name))
        {
            return null;
        }

        if (file?.Contexts?.TryGetValue(name, out var found) == true)
        {
            return new NamedContext(name, found);
        }

        var known = file?.Contexts is { Count: > 0 } contexts ? $"the contexts are {string.Join(", ", contexts.Keys)}" : "it has no contexts";
        throw new CliException($"{source}: no context '{name}' in config file {configPath} ({known}). Add it with 'worker context add {name} --server URL --cert FILE --key FILE --ca FILE'", exitCode);
    }

    /// <summary>Checks a connect timeout from any source: more than zero, at most <see cref="MaxConnectTimeout"/>.</summary>
    public static string? CheckConnectTimeout(TimeSpan value)
        => value <= TimeSpan.Zero ? "must be more than 0 (for example 30s)"
            : value > MaxConnectTimeout ? $"must be at most {MaxConnectTimeout.TotalHours:0}h"
            : null;

    /// <summary>Checks a reconnect timeout from any source: 0 (never reconnect) or more, at most <see cref="MaxReconnectTimeout"/>.</summary>
    public static string? CheckReconnectTimeout(TimeSpan value)
        => value < TimeSpan.Zero ? "must be 0 (do not reconnect) or more (for example 60s)"
            : value > MaxReconnectTimeout ? $"must be at most {MaxReconnectTimeout.TotalHours:0}h"
            : null;

    private static TimeSpan? ResolveTimeout(TimeSpan? flag, string variable, string? fromFile, string fileKey, string fileSource, Func<TimeSpan, string?> check)
    {
        // The flag was checked while parsing; the other sources are checked here and named in the error.
        if (flag is { } value)
        {
            return value;
        }

        var fromEnvironment = Environment.GetEnvironmentVariable(variable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            return ParseTimeout(fromEnvironment, variable, ExitCodes.Usage, check);
        }

        if (!string.IsNullOrWhiteSpace(fromFile))
        {
            return ParseTimeout(fromFile, $"\"{fileKey}\" in {fileSource}", ExitCodes.Failure, check);
        }

        return null;
    }

    private static TimeSpan ParseTimeout(string text, string source, int exitCode, Func<TimeSpan, string?> check)
    {
        if (!DurationParser.TryParse(text, out var value, out var error))
        {
            throw new CliException($"{source}: {error}", exitCode);
        }

        return check(value) is { } problem
            ? throw new CliException($"{source}: '{text}' {problem}", exitCode)
            : value;
    }

    public static Uri ParseServer(string text)
    {
        var s = text.Trim();
        if (!s.Contains("://", StringComparison.Ordinal))
        {
            s = "https://" + s;
        }

        if (!Uri.TryCreate(s, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttps || string.IsNullOrEmpty(uri.Host))
        {
            throw new CliException($"'{text}' is not a server address: use https://HOST:PORT (the service only speaks TLS)", ExitCodes.Usage);
        }

        return uri;
    }

    /// <summary>A context of the config file with its name.</summary>
    internal sealed record NamedContext(string Name, ClientContext Entries) : IConnectionEntries
    {
        public string? Server => Entries.Server;

        public string? Cert => Entries.Cert;

        public string? Key => Entries.Key;

        public string? Ca => Entries.Ca;

        public string? ConnectTimeout => Entries.ConnectTimeout;

        public string? ReconnectTimeout => Entries.ReconnectTimeout;
    }

    private static string? FirstNonEmpty(params string?[] values)
        => values.FirstOrDefault(v => !string.IsNullOrWhiteSpace(v));
}
