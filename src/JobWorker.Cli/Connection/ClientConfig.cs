namespace JobWorker.Cli.Connection;

/// <summary>
/// The client config file (<c>~/.config/jobworker/client.json</c> or <c>$WORKER_CONFIG</c>), written by
/// <c>worker certs init</c>. Relative paths are relative to the file's directory.
/// </summary>
internal sealed class ClientConfig
{
    public string? Server { get; set; }

    public string? Cert { get; set; }

    public string? Key { get; set; }

    public string? Ca { get; set; }

    /// <summary>How long to keep trying to connect, as a duration ("30s", "2m").</summary>
    public string? ConnectTimeout { get; set; }

    /// <summary>How long a follower whose stream broke keeps reconnecting, as a duration ("60s", "5m"; "0" never).</summary>
    public string? ReconnectTimeout { get; set; }
}
