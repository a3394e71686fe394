using System.Diagnostics;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Jobs;

namespace JobWorker.Bench.Output;

/// <summary>
/// Drain rate of a writer going as fast as it can (<c>dd if=/dev/zero bs=1M</c>), alternating in every round so
/// drift on a shared host hits all alike:
/// <list type="bullet">
/// <item><c>dd | cat &gt; file</c>: the baseline.</item>
/// <item>JobWorker: a real job started by <see cref="JobRunner"/> (its supervisor, clone3 into its cgroup, as nobody),
/// its 1 MiB output pipe spliced by the supervisor (<c>jobworker-shim</c>) into the log file.</item>
/// <item><c>dd of=file</c>: no pipe at all, the ceiling.</item>
/// </list>
/// </summary>
internal static class DrainBenchmark
{
    public static async Task RunAsync(BenchOptions options)
    {
        var work = Path.Combine(options.Directory, "jobworker-bench-output-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(work, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var mount = CgroupMount.FindMountPoint() ?? throw new InvalidOperationException("no cgroup2 mount");
        long bytes = (long)options.Mib << 20;
        var cat = new List<double>();
        var direct = new List<double>();
        var job = new List<double>();
        try
        {
            await using var runner = JobRunner.Create(new JobRunnerOptions
            {
                CgroupRoot = Path.Combine(mount, "jobworker-bench-" + Guid.NewGuid().ToString("N")[..8]),
                StateDirectory = Path.Combine(work, "logs"),
                LogSizeLimitBytes = bytes * 2,
                Identity = new() { Mode = JobIdentityMode.SharedAccount },
            });
            string dd = $"dd if=/dev/zero bs=1M count={options.Mib} status=none";
            for (int round = 0; round < options.Rounds; round++)
            {
                var catFile = Path.Combine(work, "cat.out");
                cat.Add(bytes / (await ProcessProbe.TimeShellAsync($"{dd} | cat > {catFile}")).TotalSeconds);
                File.Delete(catFile);

                job.Add(bytes / (await TimeJobAsync(runner, options.Mib, bytes)).TotalSeconds);

                var ddFile = Path.Combine(work, "dd.out");
                direct.Add(bytes / (await ProcessProbe.TimeShellAsync($"{dd} of={ddFile}")).TotalSeconds);
                File.Delete(ddFile);

                Console.Error.WriteLine(
                    $"round {round + 1}: cat {Gib(cat[^1])}, JobWorker job {Gib(job[^1])}, dd of=file {Gib(direct[^1])} GiB/s");
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }

        // The ratio of each round's adjacent measurements is steadier on a shared, busy host than the ratio of medians.
        void Row(string name, List<double> rates) => Console.WriteLine(
            $"| {name} | {Gib(ProcessProbe.Median(rates))} | {ProcessProbe.Median(rates) / ProcessProbe.Median(cat):F2}× | {ProcessProbe.Median(rates.Zip(cat, (r, c) => r / c)):F2}× |");

        Console.WriteLine($"## Drain rate: {options.Mib} MiB from `dd if=/dev/zero bs=1M`, {options.Rounds} alternating rounds, files in {options.Directory}");
        Console.WriteLine();
        Console.WriteLine("| path | median GiB/s | ratio of medians vs `cat` | median of per-round ratios |");
        Console.WriteLine("|---|---:|---:|---:|");
        Row("`dd \\| cat > file` (baseline)", cat);
        Row("JobWorker job: pipe → `jobworker-shim` (splice) → log file", job);
        Row("`dd of=file` (no pipe, ceiling)", direct);
        Console.WriteLine();
    }

    private static async Task<TimeSpan> TimeJobAsync(JobRunner runner, int mib, long bytes)
    {
        var stopwatch = Stopwatch.StartNew();
        var job = runner.Start(new JobSpec("/bin/dd", ["if=/dev/zero", "bs=1M", $"count={mib}", "status=none"]));
        var status = await job.Completion;
        stopwatch.Stop();
        if (Environment.GetEnvironmentVariable("JOBWORKER_BENCH_VERBOSE") == "1")
        {
            Console.Error.WriteLine($"  job: {stopwatch.Elapsed.TotalMilliseconds:F0} ms total, main process ran {(status.EndedAt - status.StartedAt)?.TotalMilliseconds:F0} ms, cpu {status.Usage.CpuUsageMicroseconds / 1000} ms");
        }

        runner.Remove(job);
        if (status.ExitCode != 0 || status.LogBytes != bytes)
        {
            throw new InvalidOperationException($"drain job failed: {status}");
        }

        return stopwatch.Elapsed;
    }

    private static string Gib(double bytesPerSecond) => $"{bytesPerSecond / (1 << 30):F2}";
}
