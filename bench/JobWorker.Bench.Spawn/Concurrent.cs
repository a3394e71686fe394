using System.Diagnostics;
using System.Globalization;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Jobs;

namespace JobWorker.Bench.Spawn;

/// <summary>
/// N jobs running at once (each <c>/bin/sleep</c>): server threads, fds and memory per running job, and how long
/// starting and stopping them all takes.
/// </summary>
internal static class Concurrent
{
    public static async Task RunAsync(int count)
    {
        var mount = CgroupMount.FindMountPoint() ?? throw new InvalidOperationException("no cgroup2 mount");
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var logs = Path.Combine(Path.GetTempPath(), "jobworker-bench-logs-" + suffix);
        var runner = JobRunner.Create(new JobRunnerOptions { CgroupRoot = Path.Combine(mount, "jobworker-bench-runner-" + suffix), StateDirectory = logs });
        try
        {
            // Warm up JIT and the thread pool with a few jobs, then measure from a settled state.
            for (var i = 0; i < 20; i++)
            {
                var warm = runner.Start(new JobSpec("/bin/true"));
                await warm.Completion;
                runner.Remove(warm);
            }

            Settle();
            var (rss0, threads0, fds0) = Probe();

            var watch = Stopwatch.StartNew();
            var jobs = new List<Job>(count);
            for (var i = 0; i < count; i++)
            {
                jobs.Add(runner.Start(new JobSpec("/bin/sleep", ["600"])));
            }

            var startElapsed = watch.Elapsed;
            Settle();
            var (rss1, threads1, fds1) = Probe();

            watch.Restart();
            await Task.WhenAll(jobs.Select(j => j.StopAsync(TimeSpan.FromSeconds(10))));
            var stopElapsed = watch.Elapsed;
            foreach (var job in jobs)
            {
                runner.Remove(job);
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""
                {count} running jobs (/bin/sleep), {Environment.ProcessorCount} CPUs
                | measure | before | with {count} jobs running | per job |
                |---|---:|---:|---:|
                | threads | {threads0} | {threads1} | {(threads1 - threads0) / (double)count:0.000} |
                | open fds | {fds0} | {fds1} | {(fds1 - fds0) / (double)count:0.00} |
                | RSS (MiB) | {rss0 / 1048576.0:0.0} | {rss1 / 1048576.0:0.0} | {(rss1 - rss0) / 1024.0 / count:0.0} KiB |
                | managed heap after GC (MiB) | - | {GC.GetTotalMemory(true) / 1048576.0:0.0} | |

                start {count} jobs sequentially: {startElapsed.TotalMilliseconds:0} ms ({startElapsed.TotalMilliseconds / count:0.000} ms/job);
                stop all concurrently (SIGTERM, then wait for every cgroup to empty and be removed): {stopElapsed.TotalMilliseconds:0} ms
                """));
        }
        finally
        {
            await runner.DisposeAsync();
            Directory.Delete(logs, recursive: true);
        }
    }

    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private static (long Rss, int Threads, int Fds) Probe()
    {
        long rss = 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        using var self = Process.GetCurrentProcess();
        return (rss, self.Threads.Count, Directory.GetFiles("/proc/self/fd").Length);
    }
}
