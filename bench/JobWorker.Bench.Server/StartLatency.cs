using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using JobWorker.Protocol.V1;
using JobWorkerClient = JobWorker.Protocol.V1.JobWorker.JobWorkerClient;

namespace JobWorker.Bench.Server;

/// <summary>
/// API start latency: a warm mutual-TLS client calls StartJob for a target that prints CLOCK_MONOTONIC as the first
/// thing its main() does; the latency is call → that timestamp (and call → the RPC's answer). The floor, measured in
/// the same run and interleaved: a bare unary call on the same kind of connection plus a C posix_spawn → the same
/// target's main(). Stopwatch on Linux reads CLOCK_MONOTONIC in nanoseconds, the target's clock. With a pause,
/// every iteration starts after that long idle, as starts that come one at a time do (some kernel paths are only
/// cheap right after the same path ran: a cgroup migration waits for an RCU grace period unless one just happened).
/// </summary>
internal static partial class StartLatency
{
    public static async Task RunAsync(JobWorkerClient real, JobWorkerClient bare, int iterations, int pauseMs)
    {
        var target = Path.Combine(AppContext.BaseDirectory, "bench-target");
        var getJob = new GetJobRequest { JobId = Guid.Empty.ToString() };
        var main = new List<double>();
        var answered = new List<double>();
        var unary = new List<double>();
        var spawn = new List<double>();
        var warmup = Math.Max(20, iterations / 10);
        // JOBWORKER_BENCH_PHASES=1: where the time goes, from the spans (creating them costs a few µs per start, so
        // the headline figures come from runs without it).
        using var phases = Environment.GetEnvironmentVariable("JOBWORKER_BENCH_PHASES") == "1" ? new PhaseRecorder() : null;
        for (var i = 0; i < warmup + iterations; i++)
        {
            var record = i >= warmup;
            if (pauseMs > 0)
            {
                await Task.Delay(pauseMs);
            }

            var t0 = Stopwatch.GetTimestamp();
            await bare.GetJobAsync(getJob);
            var u = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;

            var p = PosixSpawnToMain(target);

            phases?.Clear();
            t0 = Stopwatch.GetTimestamp();
            var job = (await real.StartJobAsync(new StartJobRequest { Command = target })).Job;
            var a = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            var printed = await ReadAllAsync(real, job.JobId);
            await real.RemoveJobAsync(new RemoveJobRequest { JobId = job.JobId });
            var mainAt = long.Parse(printed, CultureInfo.InvariantCulture);
            var m = (mainAt - t0) / 1e6;
            if (record)
            {
                phases?.Keep(t0, mainAt);
                unary.Add(u);
                spawn.Add(p);
                answered.Add(a);
                main.Add(m);
            }
        }

        var floor = Percentile(unary, 50) + Percentile(spawn, 50);
        Console.WriteLine(FormattableString.Invariant($"## StartJob latency: {iterations} interleaved iterations (after {warmup} warm-up), {pauseMs} ms pause before each, {Environment.ProcessorCount} CPUs"));
        Console.WriteLine();
        Console.WriteLine("| measurement | p50 | p90 | p99 | p50 ratio to the floor |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        Row("bare unary call (same mTLS)", unary, floor);
        Row("C posix_spawn → target main()", spawn, floor);
        Console.WriteLine(FormattableString.Invariant($"| **floor: bare unary p50 + posix_spawn p50** | {floor:0.000} ms | | | 1.00× |"));
        Row("StartJob → answer", answered, floor);
        Row("**StartJob → target main()**", main, floor);
        Console.WriteLine();
        Console.WriteLine(FormattableString.Invariant($"StartJob → main(): p90/p50 = {Percentile(main, 90) / Percentile(main, 50):0.00}"));
        phases?.Print();
    }

    /// <summary>Each span's start and end on the Stopwatch clock, per start; printed as medians from the call.</summary>
    private sealed class PhaseRecorder : IDisposable
    {
        private readonly ActivityListener _listener;
        private readonly List<(string Name, long Start, long End)> _current = [];
        private readonly Dictionary<string, (List<double> From, List<double> Took)> _kept = [];
        private readonly List<double> _spawnEndToMain = [];
        private int _pooled;
        private int _direct;

        public PhaseRecorder()
        {
            _listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name.StartsWith("JobWorker", StringComparison.Ordinal),
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
                ActivityStarted = a => a.SetCustomProperty("bench.start", Stopwatch.GetTimestamp()),
                ActivityStopped = a =>
                {
                    if (a.OperationName == "spawn")
                    {
                        _ = a.GetTagItem("jobworker.supervisor.pooled") is true ? Interlocked.Increment(ref _pooled) : Interlocked.Increment(ref _direct);
                    }

                    lock (_current)
                    {
                        _current.Add((a.OperationName, (long)a.GetCustomProperty("bench.start")!, Stopwatch.GetTimestamp()));
                    }
                },
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public void Clear()
        {
            lock (_current)
            {
                _current.Clear();
            }
        }

        public void Keep(long call, long main)
        {
            lock (_current)
            {
                foreach (var (name, start, end) in _current)
                {
                    if (!_kept.TryGetValue(name, out var lists))
                    {
                        _kept[name] = lists = ([], []);
                    }

                    lists.From.Add((start - call) / 1e6);
                    lists.Took.Add((end - start) / 1e6);
                    if (name == "spawn")
                    {
                        _spawnEndToMain.Add((main - end) / 1e6);
                    }
                }
            }
        }

        public void Print()
        {
            Console.WriteLine();
            Console.WriteLine("| span | starts after the call (p50) | takes (p50) |");
            Console.WriteLine("|---|---:|---:|");
            foreach (var (name, (from, took)) in _kept.OrderBy(k => Percentile(k.Value.From, 50)))
            {
                Console.WriteLine(FormattableString.Invariant($"| {name} | {Percentile(from, 50):0.000} ms | {Percentile(took, 50):0.000} ms |"));
            }

            if (_spawnEndToMain.Count > 0)
            {
                Console.WriteLine(FormattableString.Invariant($"| (target main() after the spawn span ends) | | {Percentile(_spawnEndToMain, 50):0.000} ms |"));
            }

            Console.WriteLine(FormattableString.Invariant($"\nsupervisor started ahead: {_pooled} starts; started directly: {_direct} (warm-up included)"));
        }

        public void Dispose() => _listener.Dispose();
    }

    private static void Row(string name, List<double> values, double floor)
        => Console.WriteLine(FormattableString.Invariant(
            $"| {name} | {Percentile(values, 50):0.000} ms | {Percentile(values, 90):0.000} ms | {Percentile(values, 99):0.000} ms | {Percentile(values, 50) / floor:0.00}× |"));

    private static async Task<string> ReadAllAsync(JobWorkerClient client, string id)
    {
        var text = new StringBuilder();
        using var call = client.StreamOutput(new StreamOutputRequest { JobId = id, Follow = true });
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            if (call.ResponseStream.Current.Chunk is { } chunk)
            {
                text.Append(chunk.Data.ToStringUtf8());
            }
        }

        return text.ToString();
    }

    private static unsafe double PosixSpawnToMain(string target)
    {
        var fds = stackalloc int[2];
        if (Pipe(fds) != 0)
        {
            throw new IOException("pipe failed");
        }

        try
        {
            var path = Marshal.StringToCoTaskMemUTF8(target);
            var argv = stackalloc nint[] { path, 0 };
            var envp = stackalloc nint[] { 0 };
            try
            {
                var t0 = Stopwatch.GetTimestamp();
                if (PosixSpawn(path, argv, envp, fds[1], out var pid) != 0)
                {
                    throw new IOException("posix_spawn failed");
                }

                _ = WaitPid(pid);
                var buffer = stackalloc byte[64];
                var n = Read(fds[0], buffer, 64);
                return (long.Parse(new ReadOnlySpan<byte>(buffer, (int)n), CultureInfo.InvariantCulture) - t0) / 1e6;
            }
            finally
            {
                Marshal.FreeCoTaskMem(path);
            }
        }
        finally
        {
            _ = Close(fds[0]);
            _ = Close(fds[1]);
        }
    }

    private static double Percentile(List<double> values, int p)
    {
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Round(p / 100.0 * (sorted.Count - 1)))];
    }

    [LibraryImport("libbench_posix_spawn", EntryPoint = "bench_posix_spawn")]
    private static unsafe partial int PosixSpawn(nint path, nint* argv, nint* envp, int stdoutFd, out int pid);

    [LibraryImport("libbench_posix_spawn", EntryPoint = "bench_waitpid")]
    private static partial int WaitPid(int pid);

    [LibraryImport("libc", EntryPoint = "pipe2")]
    private static unsafe partial int Pipe(int* fds, int flags = 0x80000);

    [LibraryImport("libc", EntryPoint = "read")]
    private static unsafe partial nint Read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
