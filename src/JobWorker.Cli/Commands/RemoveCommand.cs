using System.CommandLine;
using JobWorker.Protocol.V1;

namespace JobWorker.Cli.Commands;

/// <summary><c>worker rm ID</c>: removes an ended job and its log.</summary>
internal sealed class RemoveCommand : VerbCommand
{
    private readonly Argument<string> _id = JobIdArgument.Create();

    public RemoveCommand(CliContext context)
        : base("rm", "Remove an ended job and its output log", context)
    {
        Aliases.Add("remove");
        Arguments.Add(_id);
    }

    protected override async Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        using var connection = Connect(parseResult);
        await connection.Client.RemoveJobAsync(new RemoveJobRequest { JobId = parseResult.GetRequiredValue(_id) }, cancellationToken: cancellationToken);
        return 0;
    }
}
