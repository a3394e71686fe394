using System.CommandLine;
using Grpc.Core;
using JobWorker.Cli.Infrastructure;
using JobWorker.Protocol.V1;
using JobWorkerClient = JobWorker.Protocol.V1.JobWorker.JobWorkerClient;

namespace JobWorker.Cli.Commands;

/// <summary>
/// <c>worker run [limits] [--] CMD [ARGS…]</c>: starts a job, streams its output, and exits with the job's
/// exit code (128+N when a signal ended it). The first Ctrl+C or SIGTERM stops the job and still shows its
/// last output (one that comes while the job is starting waits for its id, then stops it: see
/// <see cref="JobStarter"/>); a second one leaves at once.
/// </summary>
internal sealed class RunCommand : VerbCommand
{
    private readonly JobSpecOptions _spec = new();
    private readonly Option<bool> _remove = new("--rm") { Description = "Remove the job and its log once it has ended" };

    public RunCommand(CliContext context)
        : base("run", "Run a job in the foreground: stream its output and exit with its exit code", context)
    {
        _spec.AddTo(this);
        Options.Add(_remove);
    }

    public JobSpecOptions Spec => _spec;

    public static int ExitCodeOf(JobStatus job) => job.State switch
    {
        JobState.Exited when job.HasExitCode => job.ExitCode,
        JobState.Signaled or JobState.Stopped when job.HasSignal => 128 + job.Signal,
        _ when job.HasExitCode => job.ExitCode,
        _ => ExitCodes.Failure,
    };

    protected override async Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        var request = _spec.ToRequest(parseResult);
        using var connection = Connect(parseResult);
        var client = connection.Client;
        var id = (await JobStarter.StartAsync(client, request, Settings!, Context, cancellationToken)).JobId;
        if (cancellationToken.IsCancellationRequested)
        {
            // The signal came while the server was starting the job: the user has not seen its id yet.
            Context.ReportError(DisplayName, $"interrupted while the job was starting: stopping job {id}");
        }

        // From here on the signal token no longer cancels our calls: it asks the server to stop the job,
        // and we keep streaming until the job has really ended.
        Task? stopping = null;
        using (cancellationToken.Register(() => stopping = StopAsync(client, id)))
        {
            using var stdout = Console.OpenStandardOutput();
            var follower = new OutputFollower(client, connection.Settings, Context, DisplayName);
            var final = await follower.CopyAsync(new StreamOutputRequest { JobId = id, Follow = true, FromOffset = 0 }, stdout, serverAnswered: true, CancellationToken.None)
                ?? (await client.GetJobAsync(new GetJobRequest { JobId = id }, cancellationToken: CancellationToken.None)).Job;

            if (stopping is not null)
            {
                await stopping;
            }

            if (parseResult.GetValue(_remove))
            {
                await client.RemoveJobAsync(new RemoveJobRequest { JobId = id }, cancellationToken: CancellationToken.None);
            }

            return cancellationToken.IsCancellationRequested ? Context.SignalExitCode ?? ExitCodes.SigInt : ExitCodeOf(final);
        }
    }

    private async Task StopAsync(JobWorkerClient client, string id)
    {
        try
        {
            await client.StopJobAsync(new StopJobRequest { JobId = id }, cancellationToken: CancellationToken.None);
        }
        catch (RpcException ex)
        {
            Context.ReportError(DisplayName, $"could not stop job {id}: {ErrorReporter.Describe(ex, Settings)}", ex);
        }
    }
}
