using System.CommandLine;
using System.Text.Json;
using JobWorker.Cli.Formatting;
using JobWorker.Cli.Infrastructure;

namespace JobWorker.Cli.Commands;

/// <summary><c>worker start [limits] [--] CMD [ARGS…]</c>: prints only the job id, so <c>id=$(worker start …)</c> works.</summary>
internal sealed class StartCommand : VerbCommand
{
    private readonly JobSpecOptions _spec = new();
    private readonly Option<bool> _json = new("--json") { Description = "Print the new job's status as JSON instead of its id" };

    public StartCommand(CliContext context)
        : base("start", "Start a job and print its id", context)
    {
        _spec.AddTo(this);
        Options.Add(_json);
    }

    public JobSpecOptions Spec => _spec;

    protected override async Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        var request = _spec.ToRequest(parseResult);
        using var connection = Connect(parseResult);
        var job = await JobStarter.StartAsync(connection.Client, request, Settings!, Context, cancellationToken);
        WriteStdout(parseResult.GetValue(_json)
            ? JsonSerializer.Serialize(JobViewMapper.ToView(job), CliJsonContext.Default.JobView) + "\n"
            : TerminalText.Escape(job.JobId) + "\n");
        if (cancellationToken.IsCancellationRequested)
        {
            // The signal came while the server was starting the job: it runs, and its id is on stdout.
            Context.ReportError(DisplayName, $"interrupted while the job was starting; job {job.JobId} runs (stop it with 'worker stop {job.JobId}')");
            return Context.SignalExitCode ?? ExitCodes.SigInt;
        }

        return 0;
    }
}
