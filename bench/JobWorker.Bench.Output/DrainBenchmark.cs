using System.Diagnostics;
using System.Runtime.InteropServices;
using JobWorker.Core;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Jobs;
using JobWorker.Core.Output;
using JobWorker.Core.Processes;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Bench.Output;

/// <summary>
/// Drain rate of a writer going as fast as it can (<c>dd if=/dev/zero bs=1M</c>), four ways, alternating in every
/// round so drift on a shared host hits all alike:
/// <list type="bullet">
/// <item><c>dd | cat &gt; file</c>: the baseline.</item>
/// <item>JobWorker: a real job started by <see cref="JobRunner"/> (clone3 into its cgroup, as nobody), its 1 MiB output
/// pipe, the runner's epoll loop, <see cref="OutputLog.DrainFrom"/> on the thread pool, the log file.</item>
/// <item><see cref="OutputLog.DrainFrom"/> alone: <c>dd</c> writes into a FIFO (1 MiB) whose non-blocking read end a
/// dedicated thread waits on with poll(2) and drains — the log's own cost without the event loop's thread hop.</item>
/// <item><c>dd of=file</c>: no pipe at all, the ceiling.</item>
/// </list>
/// </summary>
internal static class DrainBenchmark
{
    private const int PipeSize = 1 << 20;

    public static async Task RunAsync(BenchOptions options)
    {
        var work = Path.Combine(options.Directory, "jobworker-bench-output-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(work, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var mount = CgroupMount.FindMountPoint() ?? throw new InvalidOperationException("no cgroup2 mount");
        long bytes = (long)options.Mib << 20;
        var cat = new List<double>();
        var direct = new List<double>();
        var job = new List<double>();
        var log = new List<double>();
        var loop = new List<double>();
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

                job.Add(bytes / (await TimeJobAsync(runner, options.Mib, bytes)).TotalSeconds);
                log.Add(bytes / (await TimeLogAloneAsync(work, dd, bytes, viaEventLoop: false)).TotalSeconds);
                loop.Add(bytes / (await TimeLogAloneAsync(work, dd, bytes, viaEventLoop: true)).TotalSeconds);

                var ddFile = Path.Combine(work, "dd.out");
                direct.Add(bytes / (await ProcessProbe.TimeShellAsync($"{dd} of={ddFile}")).TotalSeconds);
                File.Delete(ddFile);

                Console.Error.WriteLine(
                    $"round {round + 1}: cat {Gib(cat[^1])}, JobWorker job {Gib(job[^1])}, OutputLog alone {Gib(log[^1])}, via EventLoop {Gib(loop[^1])}, dd of=file {Gib(direct[^1])} GiB/s");
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
        Row("JobWorker job: pipe → epoll loop → thread pool → `OutputLog.DrainFrom` → log file", job);
        Row("`OutputLog.DrainFrom` alone: FIFO → poll thread → log file", log);
        Row("`OutputLog.DrainFrom` via the runner's `EventLoop`: FIFO → epoll thread → thread pool → log file", loop);
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

    private static async Task<TimeSpan> TimeLogAloneAsync(string work, string dd, long bytes, bool viaEventLoop)
    {
        var fifo = Path.Combine(work, "fifo");
        if (MkFifo(fifo, 0b110_000_000) != 0)
        {
            throw Interop.Io.ErrnoException(Marshal.GetLastPInvokeError(), "mkfifo");
        }

        // Our own write end keeps the FIFO from reading as EOF before dd has opened it; it is closed once dd exits.
        var readEnd = OpenFd(fifo, Interop.Io.O_RDONLY | Interop.Io.O_NONBLOCK);
        var holdOpen = OpenFd(fifo, 1 /* O_WRONLY */ | Interop.Io.O_NONBLOCK);
        _ = Interop.Io.Fcntl(readEnd, Interop.Io.F_SETPIPE_SZ, PipeSize);
        var logs = Directory.CreateDirectory(Path.Combine(work, "alone"));
        using var log = OutputLog.Create(logs.FullName, Guid.NewGuid(), bytes * 2);
        try
        {
            var drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var pump = new Thread(() => Pump(log, readEnd, drained)) { Name = "bench drain" };
            using var eventLoop = viaEventLoop ? new EventLoop(e => drained.TrySetException(e)) : null;
            var stopwatch = Stopwatch.StartNew();
            if (eventLoop is null)
            {
                pump.Start();
            }
            else
            {
                // Exactly what Job does with its output pipe.
                eventLoop.Add(readEnd, token =>
                {
                    if (log.DrainFrom(readEnd))
                    {
                        eventLoop.Remove(token);
                        drained.TrySetResult();
                    }
                    else
                    {
                        eventLoop.Rearm(token);
                    }
                });
            }

            await ProcessProbe.TimeShellAsync($"{dd} > {fifo}");
            holdOpen.Dispose();
            await drained.Task;
            stopwatch.Stop();
            if (eventLoop is null)
            {
                pump.Join();
            }

            if (log.Length != bytes)
            {
                throw new InvalidOperationException($"drained {log.Length} of {bytes} bytes");
            }

            return stopwatch.Elapsed;
        }
        finally
        {
            holdOpen.Dispose();
            readEnd.Dispose();
            log.Dispose();
            logs.Delete(recursive: true);
            File.Delete(fifo);
        }
    }

    private static unsafe void Pump(OutputLog log, SafeFileHandle readEnd, TaskCompletionSource drained)
    {
        try
        {
            var pollFd = new Interop.Io.PollFd { Fd = (int)readEnd.DangerousGetHandle(), Events = Interop.Io.POLLIN };
            do
            {
                _ = Interop.Io.Poll(&pollFd, 1, -1);
            }
            while (!log.DrainFrom(readEnd));

            drained.TrySetResult();
        }
        catch (Exception e)
        {
            drained.TrySetException(e);
        }
    }

    private static SafeFileHandle OpenFd(string path, int flags)
    {
        int fd = Interop.Io.Open(path, flags | Interop.Io.O_CLOEXEC, 0);
        return fd >= 0 ? new SafeFileHandle(fd, ownsHandle: true) : throw Interop.Io.ErrnoException(Marshal.GetLastPInvokeError(), $"open {path}");
    }

    [DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int MkFifo([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int mode);

    private static string Gib(double bytesPerSecond) => $"{bytesPerSecond / (1 << 30):F2}";
}
