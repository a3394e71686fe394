using System.CommandLine;

namespace JobWorker.Cli.Commands;

/// <summary><c>worker certs …</c>: the development PKI.</summary>
internal sealed class CertsCommand : Command
{
    public CertsCommand(CliContext context)
        : base("certs", "Manage the development PKI")
    {
        Subcommands.Add(new CertsInitCommand(context));
    }
}
