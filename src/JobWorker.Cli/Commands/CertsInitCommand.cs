using System.CommandLine;
using JobWorker.Cli.Infrastructure;

namespace JobWorker.Cli.Commands;

/// <summary><c>worker certs init</c>: creates the development CA, server and client certificates and client configs.</summary>
internal sealed class CertsInitCommand : VerbCommand
{
    public CertsInitCommand(CliContext context)
        : base("init", "Create a development PKI (CA, server and client certificates) and client configs", context)
    {
    }

    protected override Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
        => throw new CliException("certs init is not available yet");
}
