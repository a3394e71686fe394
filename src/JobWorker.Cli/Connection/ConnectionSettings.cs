using System.Text.Json;
using JobWorker.Cli.Formatting;
using JobWorker.Cli.Infrastructure;

namespace JobWorker.Cli.Connection;

/// <summary>
/// Where and how to connect: each value comes from its flag, else its environment variable
/// (WORKER_SERVER, WORKER_CERT, WORKER_KEY, WORKER_CA), else the config file, else the default.
/// </summary>
internal sealed record ConnectionSettings(Uri Server, string? CertPath, string? KeyPath, string? CaPath, string? ConfigPath)
{
    public const string DefaultServer = "https://127.0.0.1:50051";

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

    public static ConnectionSettings Resolve(string? server, string? cert, string? key, string? ca, string? config)
    {
        var configPath = FirstNonEmpty(config, Environment.GetEnvironmentVariable("WORKER_CONFIG"));
        var explicitConfig = configPath is not null;
        configPath ??= DefaultConfigPath;

        ClientConfig? file = null;
        if (File.Exists(configPath))
        {
            file = Load(configPath);
        }
        else if (explicitConfig)
        {
            throw new CliException($"config file {configPath} does not exist: check --config / WORKER_CONFIG, or create one with 'worker certs init'");
        }

        var configDir = Path.GetDirectoryName(Path.GetFullPath(configPath)) ?? ".";
        string? FromFile(string? value) => string.IsNullOrEmpty(value) ? null : Path.GetFullPath(value, configDir);

        var serverText = FirstNonEmpty(server, Environment.GetEnvironmentVariable("WORKER_SERVER"), file?.Server) ?? DefaultServer;
        return new ConnectionSettings(
            ParseServer(serverText),
            FirstNonEmpty(cert, Environment.GetEnvironmentVariable("WORKER_CERT")) ?? FromFile(file?.Cert),
            FirstNonEmpty(key, Environment.GetEnvironmentVariable("WORKER_KEY")) ?? FromFile(file?.Key),
            FirstNonEmpty(ca, Environment.GetEnvironmentVariable("WORKER_CA")) ?? FromFile(file?.Ca),
            file is null ? null : configPath);
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

    private static ClientConfig Load(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return JsonSerializer.Deserialize(stream, CliJsonContext.Default.ClientConfig)
                ?? throw new CliException($"config file {path} is empty");
        }
        catch (JsonException ex)
        {
            throw new CliException($"config file {path} is not valid JSON ({ex.Message}): fix it or recreate it with 'worker certs init --force'");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot read config file {path}: {ex.Message}");
        }
    }

    private static string? FirstNonEmpty(params string?[] values)
        => values.FirstOrDefault(v => !string.IsNullOrWhiteSpace(v));
}
