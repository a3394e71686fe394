using System.Diagnostics;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Jobs;

namespace JobWorker.Bench.Output;

/// <summary>
/// Drain rate of a job writing as fast as it can (<c>dd if=/dev/zero bs=1M</c>) through the real path — a job
/// started by <see cref="JobRunner"/> (clone3 into its cgroup, as nobody), its 1 MiB output pipe, the epoll loop,
/// <c>OutputLog.DrainFrom</c>, the log file — against the same <c>dd</c> piped into <c>cat &gt; file</c>, and
/// <c>dd &gt; file</c> as the ceiling. Rounds alternate the three so drift hits all alike; medians are reported.
/// </summary>
internal static class DrainBenchmark
{
    public static async Task RunAsync(BenchOptions options)
    {
        var root = Directory.CreateTempSubdirectory("jobworker-bench-output-");
        var work = Path.Combine(options.Directory, Path.GetFileName(root.FullName));
        root.Delete();
        Directory.CreateDirectory(work, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var mount = CgroupMount.FindMountPoint() ?? throw new InvalidOperationException("no cgroup2 mount");
        long bytes = (long)options.Mib << 20;
        var cat = new List<double>();
        var direct = new List<double>();
        var ours = new List<double>();
        try
        {
            await using var runner = JobRunner.Create(new JobRunnerOptions
            {
                CgroupRoot = Path.Combine(mount, "jobworker-bench-" + Guid.NewGuid().ToString("N")[..8]),
                LogDirectory = Path.Combine(work, "logs"),
                LogSizeLimitBytes = bytes * 2,
            });
            string dd = $"dd if=/dev/zero bs=1M count={options.Mib} status=none";
            for (int round = 0; round < options.Rounds; round++)
            {
                var catFile = Path.Combine(work, "cat.out");
                cat.Add(bytes / (await ProcessProbe.TimeShellAsync($"{dd} | cat > {catFile}")).TotalSeconds);
                File.Delete(catFile);

                var ddFile = Path.Combine(work, "dd.out");
                direct.Add(bytes / (await ProcessProbe.TimeShellAsync($"{dd} of={ddFile}")).TotalSeconds);
                File.Delete(ddFile);

                var stopwatch = Stopwatch.StartNew();
                var job = runner.Start(new JobSpec("/bin/dd", ["if=/dev/zero", "bs=1M", $"count={options.Mib}", "status=none"]));
                var status = await job.Completion;
                stopwatch.Stop();
                if (status.ExitCode != 0 || status.LogBytes != bytes)
                {
                    throw new InvalidOperationException($"drain job failed: {status}");
                }

                ours.Add(bytes / stopwatch.Elapsed.TotalSeconds);
                runner.Remove(job);
                Console.Error.WriteLine($"round {round + 1}: cat {cat[^1] / (1 << 30):F2} GiB/s, dd>file {direct[^1] / (1 << 30):F2}, JobWorker {ours[^1] / (1 << 30):F2}");
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }

        double catRate = ProcessProbe.Median(cat), directRate = ProcessProbe.Median(direct), ourRate = ProcessProbe.Median(ours);
        Console.WriteLine($"## Drain rate: {options.Mib} MiB from `dd if=/dev/zero bs=1M`, median of {options.Rounds} alternating rounds, files in {options.Directory}");
        Console.WriteLine();
        Console.WriteLine("| path | GiB/s | vs `cat` |");
        Console.WriteLine("|---|---:|---:|");
        Console.WriteLine($"| `dd \\| cat > file` (baseline) | {catRate / (1 << 30):F2} | 1.00× |");
        Console.WriteLine($"| JobWorker job: pipe → epoll → `OutputLog.DrainFrom` → log file | {ourRate / (1 << 30):F2} | {ourRate / catRate:F2}× |");
        Console.WriteLine($"| `dd of=file` (no pipe, ceiling) | {directRate / (1 << 30):F2} | {directRate / catRate:F2}× |");
        Console.WriteLine();
    }
}
