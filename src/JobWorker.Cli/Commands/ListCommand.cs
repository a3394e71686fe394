using System.CommandLine;
using System.Text.Json;
using Grpc.Core;
using JobWorker.Cli.Formatting;
using JobWorker.Protocol.V1;

namespace JobWorker.Cli.Commands;

/// <summary>
/// <c>worker list [--state S] [--owner U] [--limit N] [--json]</c>: the jobs the caller may see (their own; all of
/// them for an admin), oldest first. Reads the server's pages one after another until done or <c>--limit</c>.
/// </summary>
internal sealed class ListCommand : VerbCommand
{
    private const int PageSize = 250;

    private static readonly Dictionary<string, JobState> States = new(StringComparer.OrdinalIgnoreCase)
    {
        ["running"] = JobState.Running,
        ["exited"] = JobState.Exited,
        ["signaled"] = JobState.Signaled,
        ["stopped"] = JobState.Stopped,
    };

    private readonly Option<bool> _json = new("--json") { Description = "Print a JSON array" };
    private readonly Option<string[]> _state = new("--state")
    {
        Description = "Only jobs in these states: running, exited, signaled, stopped (repeat or comma-separate)",
        HelpName = "STATE",
        Arity = ArgumentArity.ZeroOrMore,
        DefaultValueFactory = _ => [],
    };

    private readonly Option<string?> _owner = new("--owner") { Description = "Only jobs of this user (admins; a user may name only themselves)", HelpName = "USER" };
    private readonly Option<long?> _limit = OptionFactory.PositiveInteger("--limit", "List at most N jobs (the oldest first)");

    public ListCommand(CliContext context)
        : base("list", "List jobs", context)
    {
        Aliases.Add("ls");
        Options.Add(_state);
        Options.Add(_owner);
        Options.Add(_limit);
        Options.Add(_json);
        Validators.Add(r =>
        {
            foreach (var state in (r.GetValue(_state) ?? []).SelectMany(s => s.Split(',')))
            {
                if (!States.ContainsKey(state.Trim()))
                {
                    r.AddError($"--state: '{state}' is not a state; use running, exited, signaled or stopped");
                }
            }

            if (r.GetValue(_owner) is { Length: 0 })
            {
                r.AddError("--owner: give a user name");
            }
        });
    }

    protected override async Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        var request = new ListJobsRequest { Owner = parseResult.GetValue(_owner) ?? string.Empty };
        request.States.AddRange((parseResult.GetValue(_state) ?? []).SelectMany(s => s.Split(',')).Select(s => States[s.Trim()]).Distinct());
        var limit = parseResult.GetValue(_limit) ?? long.MaxValue;
        var json = parseResult.GetValue(_json);
        // The table shows what the basic view carries; --json prints every field, as GetJob has them.
        request.View = json ? Protocol.V1.JobView.Full : Protocol.V1.JobView.Basic;

        using var connection = Connect(parseResult);
        var jobs = new List<JobStatus>();
        do
        {
            request.PageSize = (int)Math.Min(PageSize, limit - jobs.Count);
            var page = await connection.Client.ListJobsAsync(request, cancellationToken: cancellationToken);
            jobs.AddRange(page.Jobs.Take((int)Math.Min(page.Jobs.Count, limit - jobs.Count)));
            request.PageToken = page.NextPageToken;
        }
        while (request.PageToken.Length > 0 && jobs.Count < limit);

        if (json)
        {
            // A list entry carries a bounded prefix of the arguments; --json prints them exactly, as GetJob has them.
            for (var i = 0; i < jobs.Count; i++)
            {
                if (jobs[i].ArgsTruncated)
                {
                    jobs[i] = await GetFullAsync(connection.Client, jobs[i], cancellationToken);
                }
            }
        }

        WriteStdout(json
            ? JsonSerializer.Serialize(jobs.Select(JobViewMapper.ToView).ToList(), CliJsonContext.Default.ListJobView) + "\n"
            : JobTable.List(jobs, DateTimeOffset.UtcNow));
        return 0;
    }

    private static async Task<JobStatus> GetFullAsync(Protocol.V1.JobWorker.JobWorkerClient client, JobStatus entry, CancellationToken cancellationToken)
    {
        try
        {
            return (await client.GetJobAsync(new GetJobRequest { JobId = entry.JobId }, cancellationToken: cancellationToken)).Job;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            // Removed since it was listed: keep the entry, flagged as cut.
            return entry;
        }
    }
}
