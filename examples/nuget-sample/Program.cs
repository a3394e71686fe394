// nuget-sample [CMD [ARGS...]]: JobWorker.Core from its NuGet package. Runs one job (by default a shell that
// greets), prints its output and how it ended, and exits with the job's exit code. Needs root and cgroup v2.
using System.Globalization;
using JobWorker.Core.Jobs;
using JobWorker.Core.Output;

var command = args.Length > 0 ? args[0] : "sh";
string[] arguments = args.Length > 0 ? args[1..] : ["-c", "echo \"hello from job $$, running as $(id -un)\""];

var cgroupMount = File.ReadLines("/proc/self/mountinfo")
    .Select(line => (Fields: line.Split(' '), Type: line[(line.IndexOf(" - ", StringComparison.Ordinal) + 3)..].Split(' ')[0]))
    .Where(mount => mount.Type == "cgroup2")
    .Select(mount => mount.Fields[4])
    .FirstOrDefault();
if (cgroupMount is null)
{
    Console.Error.WriteLine("nuget-sample: no cgroup2 file system is mounted (see /proc/self/mountinfo)");
    return 1;
}

// A state directory and a cgroup subtree of this run only; disposing the runner removes the subtree.
var stateDirectory = Directory.CreateTempSubdirectory("jobworker-nuget-sample.").FullName;
var pid = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
try
{
    await using var runner = JobRunner.Create(new JobRunnerOptions
    {
        StateDirectory = stateDirectory,
        CgroupRoot = Path.Combine(cgroupMount, "jobworker-nuget-sample-" + pid),
        Identity = new JobIdentityOptions { Mode = JobIdentityMode.SharedAccount },
    });
    var job = runner.Start(new JobSpec(command, arguments));
    using var stdout = Console.OpenStandardOutput();
    await foreach (var chunk in job.ReadOutputAsync(new OutputReadOptions { Follow = true }))
    {
        stdout.Write(chunk.Data.Span);
    }

    var status = await job.Completion;
    Console.Error.WriteLine($"nuget-sample: job {job.Id} {status.State}, exit code {status.ExitCode?.ToString(CultureInfo.InvariantCulture) ?? "none"}");
    runner.Remove(job);
    return status.ExitCode ?? 128 + (status.Signal ?? 0);
}
catch (JobWorkerException e)
{
    Console.Error.WriteLine($"nuget-sample: {e.Message}");
    return 1;
}
finally
{
    Directory.Delete(stateDirectory, recursive: true);
}
