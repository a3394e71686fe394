using System.CommandLine;
using System.CommandLine.Completions;
using JobWorker.Cli.Connection;
using JobWorker.Protocol.V1;

namespace JobWorker.Cli.Commands;

/// <summary>
/// Dynamic completions for the <c>[suggest]</c> directive the completion scripts call: job ids from the server, context
/// names from the config file. Completion runs on every Tab: it is quick and silent, so a server that is down, slow or
/// not configured yields no job ids, never a message or a wait of more than <see cref="Budget"/>.
/// </summary>
internal static class Completion
{
    /// <summary>The most a Tab waits for the server (connection and answer).</summary>
    public static readonly TimeSpan Budget = TimeSpan.FromSeconds(2);

    private const int PageSize = 250;

    private const int MaxJobs = 2000;

    /// <summary>Adds job id completion to every job id argument under <paramref name="root"/>.</summary>
    public static void AddJobIdSources(Command root, CliContext context)
    {
        foreach (var command in Descendants(root))
        {
            foreach (var argument in command.Arguments.Where(JobIdArgument.Is))
            {
                argument.CompletionSources.Add(c => JobIds(context, c));
            }
        }
    }

    public static IEnumerable<CompletionItem> JobIds(CliContext context, CompletionContext completion)
    {
        try
        {
            // The connection flags typed so far on the line count (--config, --context, --server…).
            var settings = context.Globals.Resolve(completion.ParseResult);
            settings = settings with { ConnectTimeout = settings.ConnectTimeout < Budget ? settings.ConnectTimeout : Budget };
            using var connection = WorkerConnection.Open(settings);
            var deadline = DateTime.UtcNow + Budget;
            var word = completion.WordToComplete;
            var request = new ListJobsRequest { PageSize = PageSize };
            var items = new List<CompletionItem>();
            var seen = 0;

            // Oldest first: read on, so that the newest jobs, the likeliest to be meant, are not cut off.
            do
            {
                var page = connection.Client.ListJobs(request, deadline: deadline);
                seen += page.Jobs.Count;
                items.AddRange(page.Jobs
                    .Where(j => j.JobId.StartsWith(word, StringComparison.Ordinal))
                    .Select(j => new CompletionItem(j.JobId, detail: j.Command)));
                request.PageToken = page.NextPageToken;
            }
            while (request.PageToken.Length > 0 && seen < MaxJobs);

            return items;
        }
        catch (Exception)
        {
            // Whatever went wrong, a Tab offers nothing rather than a message in the middle of the command line.
            return [];
        }
    }

    public static IEnumerable<CompletionItem> ContextNames(CliContext context, CompletionContext completion)
    {
        try
        {
            var path = ClientConfigFile.Locate(completion.ParseResult.GetValue(context.Globals.Config)).Path;
            return (ClientConfigFile.LoadOrEmpty(path).Contexts?.Keys ?? Enumerable.Empty<string>())
                .Where(n => n.StartsWith(completion.WordToComplete, StringComparison.Ordinal))
                .Select(n => new CompletionItem(n))
                .ToList();
        }
        catch (Exception)
        {
            return [];
        }
    }

    private static IEnumerable<Command> Descendants(Command command)
    {
        yield return command;
        foreach (var child in command.Subcommands.SelectMany(Descendants))
        {
            yield return child;
        }
    }
}
