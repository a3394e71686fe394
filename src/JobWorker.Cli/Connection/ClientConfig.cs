using System.Text.Json;
using System.Text.Json.Serialization;

namespace JobWorker.Cli.Connection;

/// <summary>The connection settings a config file can hold: its top-level keys, and each context's.</summary>
internal interface IConnectionEntries
{
    string? Server { get; }

    string? Cert { get; }

    string? Key { get; }

    string? Ca { get; }

    string? ConnectTimeout { get; }

    string? ReconnectTimeout { get; }
}

/// <summary>
/// The client config file (<c>~/.config/jobworker/client.json</c> or <c>$WORKER_CONFIG</c>), written by
/// <c>worker certs init</c> and <c>worker context</c>. Relative paths are relative to the file's directory.
/// </summary>
internal sealed class ClientConfig : IConnectionEntries
{
    public string? Server { get; set; }

    public string? Cert { get; set; }

    public string? Key { get; set; }

    public string? Ca { get; set; }

    /// <summary>How long to keep trying to connect, as a duration ("30s", "2m").</summary>
    public string? ConnectTimeout { get; set; }

    /// <summary>How long a follower whose stream broke keeps reconnecting, as a duration ("60s", "5m"; "0" never).</summary>
    public string? ReconnectTimeout { get; set; }

    /// <summary>The context used when neither --context nor WORKER_CONTEXT names one.</summary>
    public string? CurrentContext { get; set; }

    /// <summary>Named connection settings (servers, identities), chosen with --context, WORKER_CONTEXT or <see cref="CurrentContext"/>.</summary>
    public SortedDictionary<string, ClientContext>? Contexts { get; set; }

    /// <summary>Keys this version does not know, kept when the CLI rewrites the file.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Other { get; set; }
}

/// <summary>One named context of the config file: the same keys as the file's top level.</summary>
internal sealed class ClientContext : IConnectionEntries
{
    public string? Server { get; set; }

    public string? Cert { get; set; }

    public string? Key { get; set; }

    public string? Ca { get; set; }

    public string? ConnectTimeout { get; set; }

    public string? ReconnectTimeout { get; set; }

    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Other { get; set; }
}
