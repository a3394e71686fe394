using System.CommandLine;
using JobWorker.Protocol.V1;

namespace JobWorker.Cli.Commands;

/// <summary>
/// <c>worker logs [-f] [--tail N] [--from-offset N] ID</c>: the job's raw bytes on stdout, binary-safe
/// (written to the stdout stream, never decoded as text). With -f it ends when the job ends.
/// </summary>
internal sealed class LogsCommand : VerbCommand
{
    private readonly Argument<string> _id = JobIdArgument.Create();
    private readonly Option<bool> _follow = new("--follow", "-f") { Description = "Keep writing new output until the job ends" };
    private readonly Option<long?> _tail = OptionFactory.PositiveInteger("--tail", "Start at the last N lines", min: 0, max: int.MaxValue);
    private readonly Option<long?> _fromOffset = OptionFactory.PositiveInteger("--from-offset", "Start at this byte offset (to resume an earlier read)", "OFFSET", min: 0);

    public LogsCommand(CliContext context)
        : base("logs", "Write a job's output (stdout and stderr, as they were interleaved) to stdout", context)
    {
        Arguments.Add(_id);
        Options.Add(_follow);
        Options.Add(_tail);
        Options.Add(_fromOffset);
        Validators.Add(r =>
        {
            if (r.GetResult(_tail) is not null && r.GetResult(_fromOffset) is not null)
            {
                r.AddError("--tail and --from-offset cannot be used together");
            }
        });
    }

    protected override async Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        var request = new StreamOutputRequest
        {
            JobId = parseResult.GetRequiredValue(_id),
            Follow = parseResult.GetValue(_follow),
        };
        if (parseResult.GetValue(_tail) is { } tail)
        {
            request.TailLines = (int)tail;
        }
        else
        {
            request.FromOffset = parseResult.GetValue(_fromOffset) ?? 0;
        }

        using var connection = Connect(parseResult);
        using var stdout = Console.OpenStandardOutput();
        await new OutputFollower(connection.Client, connection.Settings, Context, DisplayName).CopyAsync(request, stdout, serverAnswered: false, cancellationToken);
        return 0;
    }
}
