using System.CommandLine;
using System.Text.Json;
using JobWorker.Cli.Formatting;
using JobWorker.Protocol.V1;

namespace JobWorker.Cli.Commands;

/// <summary><c>worker status ID</c>: the job's state, limits, usage and output size.</summary>
internal sealed class StatusCommand : VerbCommand
{
    private readonly Argument<string> _id = JobIdArgument.Create();
    private readonly Option<bool> _json = new("--json") { Description = "Print JSON" };

    public StatusCommand(CliContext context)
        : base("status", "Show a job's status", context)
    {
        Arguments.Add(_id);
        Options.Add(_json);
    }

    protected override async Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        using var connection = Connect(parseResult);
        var response = await connection.Client.GetJobAsync(new GetJobRequest { JobId = parseResult.GetRequiredValue(_id) }, cancellationToken: cancellationToken);
        WriteStdout(parseResult.GetValue(_json)
            ? JsonSerializer.Serialize(JobViewMapper.ToView(response.Job), CliJsonContext.Default.JobView) + "\n"
            : JobTable.Describe(response.Job, DateTimeOffset.UtcNow));
        return 0;
    }
}
