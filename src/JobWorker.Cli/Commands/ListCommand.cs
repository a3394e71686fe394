using System.CommandLine;
using System.Text.Json;
using JobWorker.Cli.Formatting;
using JobWorker.Protocol.V1;

namespace JobWorker.Cli.Commands;

/// <summary><c>worker list</c>: the jobs the caller may see (their own; all of them for an admin).</summary>
internal sealed class ListCommand : VerbCommand
{
    private readonly Option<bool> _json = new("--json") { Description = "Print a JSON array" };

    public ListCommand(CliContext context)
        : base("list", "List jobs", context)
    {
        Aliases.Add("ls");
        Options.Add(_json);
    }

    protected override async Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        using var connection = Connect(parseResult);
        var response = await connection.Client.ListJobsAsync(new ListJobsRequest(), cancellationToken: cancellationToken);
        WriteStdout(parseResult.GetValue(_json)
            ? JsonSerializer.Serialize(response.Jobs.Select(JobViewMapper.ToView).ToList(), CliJsonContext.Default.ListJobView) + "\n"
            : JobTable.List(response.Jobs, DateTimeOffset.UtcNow));
        return 0;
    }
}
