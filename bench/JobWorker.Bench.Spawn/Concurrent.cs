using System.Diagnostics;
using System.Globalization;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Jobs;

namespace JobWorker.Bench.Spawn;

/// <summary>
/// N jobs running at once (each <c>/bin/sleep</c>): server threads and fds per running job, memory per running job
/// as PSS of the server plus every supervisor (<c>/proc/&lt;pid&gt;/smaps_rollup</c>), how long starting them takes,
/// how long a new runner takes to re-attach to all of them and serve their status (a server restart), and how long
/// stopping them all takes.
/// </summary>
internal static class Concurrent
{
    public static async Task RunAsync(int count)
    {
        var mount = CgroupMount.FindMountPoint() ?? throw new InvalidOperationException("no cgroup2 mount");
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var logs = Path.Combine(Path.GetTempPath(), "jobworker-bench-logs-" + suffix);
        var runner = JobRunner.Create(new JobRunnerOptions { CgroupRoot = Path.Combine(mount, "jobworker-bench-runner-" + suffix), StateDirectory = logs, Identity = new() { Mode = JobIdentityMode.SharedAccount } });
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
            var pss0 = Pss(Environment.ProcessId);

            var watch = Stopwatch.StartNew();
            var jobs = new List<Job>(count);
            for (var i = 0; i < count; i++)
            {
                jobs.Add(runner.Start(new JobSpec("/bin/sleep", ["600"])));
            }

            var startElapsed = watch.Elapsed;
            Settle();
            var (rss1, threads1, fds1) = Probe();
            var pss1 = Pss(Environment.ProcessId);
            var shims = ShimPids(runner.CgroupRoot);
            var shimPss = shims.Sum(Pss);

            // A server restart: the runner goes (jobs keep running), a new one re-attaches and serves every status.
            var options = runner.Options;
            var ids = jobs.Select(j => j.Id).ToList();
            await runner.DisposeAsync();
            watch.Restart();
            runner = JobRunner.Create(options);
            var running = ids.Count(id => runner.TryGetJob(id, out var job) && job.Status.State == JobState.Running);
            var restartElapsed = watch.Elapsed;
            if (running != count)
            {
                throw new InvalidOperationException($"{running} of {count} jobs re-attached as running");
            }

            jobs = [.. ids.Select(id => runner.TryGetJob(id, out var job) ? job : throw new InvalidOperationException($"job {id} lost"))];
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
                | server RSS (MiB) | {rss0 / 1048576.0:0.0} | {rss1 / 1048576.0:0.0} | {(rss1 - rss0) / 1024.0 / count:0.0} KiB |
                | server PSS (MiB) | {pss0 / 1048576.0:0.0} | {pss1 / 1048576.0:0.0} | {(pss1 - pss0) / 1024.0 / count:0.0} KiB |
                | supervisors ({shims.Count}), PSS (MiB) | 0 | {shimPss / 1048576.0:0.0} | {shimPss / 1024.0 / count:0.0} KiB |
                | **server + supervisors, PSS** | | | **{(pss1 - pss0 + shimPss) / 1024.0 / count:0.0} KiB** |
                | managed heap after GC (MiB) | - | {GC.GetTotalMemory(true) / 1048576.0:0.0} | |

                start {count} jobs sequentially: {startElapsed.TotalMilliseconds:0} ms ({startElapsed.TotalMilliseconds / count:0.000} ms/job);
                restart: a new runner re-attached to all {count} and served each one's status in {restartElapsed.TotalMilliseconds:0} ms;
                stop all concurrently (SIGTERM, then wait for every cgroup to empty and be removed): {stopElapsed.TotalMilliseconds:0} ms
                """));
        }
        finally
        {
            var root = runner.CgroupRoot;
            await runner.StopAllAsync(TimeSpan.Zero);
            await runner.DisposeAsync();
            Directory.Delete(logs, recursive: true);

            // The runner after the restart found the root existing, so it leaves it: the bench created it.
            if (Directory.Exists(root))
            {
                Directory.Delete(root);
            }
        }
    }

    /// <summary>Proportional set size: shared pages (the supervisors' code) split between the processes sharing them.</summary>
    private static long Pss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps_rollup"))
        {
            if (line.StartsWith("Pss:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    private static List<int> ShimPids(string root)
        => [.. Directory.EnumerateDirectories(root)
            .Select(group => Path.Combine(group, "shim", "cgroup.procs"))
            .Where(File.Exists)
            .SelectMany(File.ReadLines)
            .Select(line => int.Parse(line, CultureInfo.InvariantCulture))];

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
