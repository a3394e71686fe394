using System.CommandLine;
using Google.Protobuf.WellKnownTypes;
using JobWorker.Protocol.V1;

namespace JobWorker.Cli.Commands;

/// <summary><c>worker stop [--grace 5s] ID</c>: SIGTERM, then SIGKILL after the grace period.</summary>
internal sealed class StopCommand : VerbCommand
{
    private readonly Argument<string> _id = JobIdArgument.Create();
    private readonly Option<TimeSpan?> _grace = OptionFactory.Duration("--grace", "Time between SIGTERM and SIGKILL (5s, 500ms, 1m) [default: the server's]");

    public StopCommand(CliContext context)
        : base("stop", "Stop a job (SIGTERM, then SIGKILL after the grace period)", context)
    {
        Arguments.Add(_id);
        Options.Add(_grace);
    }

    protected override async Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        var request = new StopJobRequest { JobId = parseResult.GetRequiredValue(_id) };
        if (parseResult.GetValue(_grace) is { } grace)
        {
            request.Grace = Duration.FromTimeSpan(grace);
        }

        using var connection = Connect(parseResult);
        await connection.Client.StopJobAsync(request, cancellationToken: cancellationToken);
        return 0;
    }
}
