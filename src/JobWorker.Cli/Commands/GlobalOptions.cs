using System.CommandLine;
using JobWorker.Cli.Connection;

namespace JobWorker.Cli.Commands;

/// <summary>Connection options, accepted by every verb (flag, else environment variable, else config file context, else its top level).</summary>
internal sealed class GlobalOptions
{
    public Option<string?> Server { get; } = new("--server")
    {
        Description = $"Server address [env: WORKER_SERVER] [default: {ConnectionSettings.DefaultServer}]",
        HelpName = "URL",
        Recursive = true,
    };

    public Option<string?> Cert { get; } = new("--cert")
    {
        Description = "Client certificate (PEM) [env: WORKER_CERT]",
        HelpName = "FILE",
        Recursive = true,
    };

    public Option<string?> Key { get; } = new("--key")
    {
        Description = "Client private key (PEM) [env: WORKER_KEY]",
        HelpName = "FILE",
        Recursive = true,
    };

    public Option<string?> Ca { get; } = new("--ca")
    {
        Description = "The service's CA certificate (PEM); the only root the client trusts [env: WORKER_CA]",
        HelpName = "FILE",
        Recursive = true,
    };

    public Option<string?> Config { get; } = new("--config")
    {
        Description = "Client config file [env: WORKER_CONFIG] [default: ~/.config/jobworker/client.json]",
        HelpName = "FILE",
        Recursive = true,
    };

    public Option<string?> Context { get; } = new("--context")
    {
        Description = "Use this context of the config file (see 'worker context') [env: WORKER_CONTEXT] [default: the file's current context]",
        HelpName = "NAME",
        Recursive = true,
    };

    public Option<TimeSpan?> ConnectTimeout { get; } = ConnectTimeoutOption();

    public Option<TimeSpan?> ReconnectTimeout { get; } = ReconnectTimeoutOption();

    public IEnumerable<Option> All => [Server, Cert, Key, Ca, Config, Context, ConnectTimeout, ReconnectTimeout];

    public ConnectionSettings Resolve(ParseResult parseResult) => ConnectionSettings.Resolve(
        parseResult.GetValue(Server),
        parseResult.GetValue(Cert),
        parseResult.GetValue(Key),
        parseResult.GetValue(Ca),
        parseResult.GetValue(Config),
        parseResult.GetValue(ConnectTimeout),
        parseResult.GetValue(ReconnectTimeout),
        parseResult.GetValue(Context));

    private static Option<TimeSpan?> ConnectTimeoutOption()
    {
        var option = OptionFactory.Duration(
            "--connect-timeout",
            $"How long to keep trying to connect (TCP and TLS, with retries) before giving up [env: WORKER_CONNECT_TIMEOUT] [default: {ConnectionSettings.DefaultConnectTimeout.TotalSeconds:0}s]",
            ConnectionSettings.CheckConnectTimeout);
        option.Recursive = true;
        return option;
    }

    private static Option<TimeSpan?> ReconnectTimeoutOption()
    {
        var option = OptionFactory.Duration(
            "--reconnect-timeout",
            $"How long logs -f and run keep reconnecting when the server goes away mid-stream (restart, upgrade); 0 never [env: WORKER_RECONNECT_TIMEOUT] [default: {ConnectionSettings.DefaultReconnectTimeout.TotalSeconds:0}s]",
            ConnectionSettings.CheckReconnectTimeout);
        option.Recursive = true;
        return option;
    }
}
