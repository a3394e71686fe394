// example CMD [ARGS...]: runs one job with JobWorker.Core, writes its output to stdout as it comes, and on
// Ctrl+C or SIGTERM stops the job gracefully (SIGTERM, then SIGKILL after the grace period), removes it and
// disposes the runner, which removes its cgroup subtree, before exiting. Try:
//   ./example bash -c 'while true; do echo hello; sleep 2; done'
//   ./example bash -c 'while true; do echo hello; sleep 2; done' &  kill -TERM $!
using System.Runtime.InteropServices;
using JobWorker.Core.Jobs;
using JobWorker.Core.Output;

if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.Error.WriteLine("usage: example CMD [ARGS...]   (runs CMD as a job; Ctrl+C or SIGTERM stops it)");
    return args.Length == 0 ? 2 : 0;
}

// The job's record and log go to a private state directory of this run, never /tmp (design.md "Output").
var state = Environment.GetEnvironmentVariable("XDG_STATE_HOME") is { Length: > 0 } xdg
    ? xdg
    : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state");
var stateDirectory = Path.Combine(state, "jobworker-example", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));

using var stopRequested = new CancellationTokenSource();
var signalName = "";
void OnSignal(PosixSignalContext context)
{
    // Keep running: the job is stopped below, then we exit with 128+signal ourselves.
    context.Cancel = true;
    signalName = context.Signal == PosixSignal.SIGINT ? "SIGINT" : "SIGTERM";
    stopRequested.Cancel();
}

using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

// Our own cgroup subtree (<cgroup2 mount>/jobworker-example-<pid>), so a server using the default
// <mount>/jobworker on this machine is never touched. Disposing the runner removes it.
var cgroupMount = File.ReadLines("/proc/self/mountinfo")
    .Select(line => (Fields: line.Split(' '), Type: line[(line.IndexOf(" - ", StringComparison.Ordinal) + 3)..].Split(' ')[0]))
    .Where(m => m.Type == "cgroup2")
    .Select(m => m.Fields[4])
    .FirstOrDefault();
if (cgroupMount is null)
{
    Console.Error.WriteLine("example: no cgroup2 file system is mounted (see /proc/self/mountinfo)");
    return 1;
}

await using var runner = JobRunner.Create(new JobRunnerOptions
{
    StateDirectory = stateDirectory,
    CgroupRoot = Path.Combine(cgroupMount, $"jobworker-example-{Environment.ProcessId}"),
    // One user, so one account: the job runs as nobody. A program serving several users leaves the default,
    // a uid of each owner's own (JobSpec.Owner), so their jobs cannot touch each other (docs/design-identity.md).
    Identity = new JobIdentityOptions { Mode = JobIdentityMode.SharedAccount },
});
Job job;
try
{
    job = runner.Start(new JobSpec(args[0], args[1..]));
}
catch (JobWorker.Core.Jobs.JobWorkerException ex)
{
    Console.Error.WriteLine($"example: cannot start {args[0]}: {ex.Message}");
    return 1;
}

Console.Error.WriteLine($"example: job {job.Id} started (pid {job.Status.Pid}); Ctrl+C or SIGTERM stops it");

using var stdout = Console.OpenStandardOutput();
try
{
    await foreach (var chunk in job.ReadOutputAsync(new OutputReadOptions { Follow = true }, stopRequested.Token))
    {
        stdout.Write(chunk.Data.Span);
    }
}
catch (OperationCanceledException) when (stopRequested.IsCancellationRequested)
{
    Console.Error.WriteLine($"example: {signalName}: stopping job {job.Id} (grace 5s)");
    await job.StopAsync(TimeSpan.FromSeconds(5));
}

var final = await job.Completion;
Console.Error.WriteLine($"example: job {job.Id} {final.State}" +
    (final.ExitCode is { } code ? $", exit code {code}" : "") +
    (final.Signal is { } signal ? $", signal {signal}" : "") +
    $", {final.LogBytes} bytes of output");

// Remove the job's record and log; disposing the runner (await using) then removes its cgroup subtree. The state
// directory of this run goes with the process (ProcessExit runs after the runner is disposed).
runner.Remove(job);
AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(stateDirectory, recursive: true);
return stopRequested.IsCancellationRequested
    ? 128 + (signalName == "SIGINT" ? 2 : 15)
    : final.ExitCode ?? 128 + (final.Signal ?? 0);
