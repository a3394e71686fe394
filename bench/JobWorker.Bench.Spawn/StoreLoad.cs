using System.Diagnostics;
using System.Globalization;
using JobWorker.Core.Jobs;
using JobWorker.Core.State;

namespace JobWorker.Bench.Spawn;

/// <summary>
/// The state store at start-up: how long <see cref="FileJobStore.Load"/> takes for N job records, against reading
/// the same N files with <see cref="File.ReadAllBytes(string)"/> in the same run (the floor: one directory listing and
/// one small file read per job). Also the cost of recording a job (<see cref="FileJobStore.Create"/>) against
/// mkdir + <see cref="File.WriteAllBytes(string, byte[])"/> of the same bytes, and of replacing it (<see cref="FileJobStore.Update"/>). Page cache warm (the records were just
/// written); no fsync anywhere, as in the store.
/// </summary>
internal static class StoreLoad
{
    public static void Run(int count, int rounds, string parent)
    {
        var directory = Path.Combine(parent, "jobworker-bench-state-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        try
        {
            var state = Path.Combine(directory, "state");
            var baselineDirectory = Path.Combine(directory, "baseline");
            Directory.CreateDirectory(baselineDirectory);
            using var store = FileJobStore.Open(state);
            var records = Enumerable.Range(0, count).Select(Record).ToList();

            var create = Stopwatch.StartNew();
            foreach (var record in records)
            {
                store.Create(record);
            }

            create.Stop();
            var update = Stopwatch.StartNew();
            foreach (var record in records)
            {
                store.Update(record with { StopRequestedAt = record.CreatedAt.AddSeconds(1) });
            }

            update.Stop();
            var write = Stopwatch.StartNew();
            foreach (var record in records)
            {
                var job = Path.Combine(baselineDirectory, record.Id.ToString("N", CultureInfo.InvariantCulture));
                Directory.CreateDirectory(job);
                File.WriteAllBytes(Path.Combine(job, "job.json"), File.ReadAllBytes(Path.Combine(store.JobDirectory(record.Id), "job.json")));
            }

            write.Stop();
            long bytes = records.Sum(r => new FileInfo(Path.Combine(store.JobDirectory(r.Id), "job.json")).Length);

            var files = records.Select(r => File.ReadAllBytes(Path.Combine(store.JobDirectory(r.Id), "job.json"))).ToList();

            // Interleaved rounds after one warm-up of each, medians reported.
            var loads = new List<double>();
            var reads = new List<double>();
            var parses = new List<double>();
            for (int round = -1; round < rounds; round++)
            {
                // Alternate which goes first, so neither always meets the cache state the other left.
                double load = 0, readMs = 0;
                if (round % 2 == 0)
                {
                    load = TimeLoad(store, count);
                    readMs = TimeRead(state, bytes);
                }
                else
                {
                    readMs = TimeRead(state, bytes);
                    load = TimeLoad(store, count);
                }

                var t = Stopwatch.StartNew();
                foreach (var file in files)
                {
                    _ = JobRecordDocument.ReadVersion(file);
                    _ = JobRecordDocument.Deserialize(file).ToRecord();
                }

                var parseMs = t.Elapsed.TotalMilliseconds;
                if (round >= 0)
                {
                    loads.Add(load);
                    reads.Add(readMs);
                    parses.Add(parseMs);
                }
            }

            double loadMedian = Median(loads), readMedian = Median(reads), parseMedian = Median(parses);
            Console.WriteLine($"{count} job records ({bytes / count} bytes each on average, half of them ended), {rounds} rounds, page cache warm; {Environment.ProcessorCount} CPUs; {parent}");
            Console.WriteLine();
            Console.WriteLine("| operation | median | min | max | per record | ratio |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| baseline: list + File.ReadAllBytes of each job.json | {readMedian:0.0} ms | {reads.Min():0.0} ms | {reads.Max():0.0} ms | {readMedian * 1000 / count:0.0} µs | 1.00× |"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| FileJobStore.Load | {loadMedian:0.0} ms | {loads.Min():0.0} ms | {loads.Max():0.0} ms | {loadMedian * 1000 / count:0.0} µs | {loadMedian / readMedian:0.00}× |"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| of which: version check + deserialize + map, in memory | {parseMedian:0.0} ms | {parses.Min():0.0} ms | {parses.Max():0.0} ms | {parseMedian * 1000 / count:0.0} µs | {parseMedian / readMedian:0.00}× |"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| baseline: mkdir + File.WriteAllBytes of each job.json (once) | {write.Elapsed.TotalMilliseconds:0.0} ms | | | {write.Elapsed.TotalMilliseconds * 1000 / count:0.0} µs | 1.00× |"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| FileJobStore.Create of each record (once) | {create.Elapsed.TotalMilliseconds:0.0} ms | | | {create.Elapsed.TotalMilliseconds * 1000 / count:0.0} µs | {create.Elapsed.TotalMilliseconds / write.Elapsed.TotalMilliseconds:0.00}× |"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| FileJobStore.Update of each record (once, replaces job.json) | {update.Elapsed.TotalMilliseconds:0.0} ms | | | {update.Elapsed.TotalMilliseconds * 1000 / count:0.0} µs | {update.Elapsed.TotalMilliseconds / write.Elapsed.TotalMilliseconds:0.00}× |"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static double TimeLoad(FileJobStore store, int count)
    {
        var t = Stopwatch.StartNew();
        var contents = store.Load();
        var elapsed = t.Elapsed.TotalMilliseconds;
        if (contents.Records.Count != count || contents.Problems.Count != 0)
        {
            throw new InvalidOperationException($"loaded {contents.Records.Count} records, {contents.Problems.Count} problems");
        }

        return elapsed;
    }

    private static double TimeRead(string state, long bytes)
    {
        var t = Stopwatch.StartNew();
        long read = 0;
        foreach (var job in Directory.EnumerateDirectories(Path.Combine(state, "jobs")))
        {
            read += File.ReadAllBytes(Path.Combine(job, "job.json")).Length;
        }

        var elapsed = t.Elapsed.TotalMilliseconds;
        return read == bytes ? elapsed : throw new InvalidOperationException($"read {read} bytes, expected {bytes}");
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    // What a busy server holds: a command with a few arguments and variables, an owner, and for ended jobs a final
    // status with usage.
    private static JobRecord Record(int i)
    {
        var created = DateTimeOffset.UnixEpoch.AddDays(20_000).AddSeconds(i);
        return new JobRecord
        {
            Id = Guid.NewGuid(),
            Spec = new JobSpec("/usr/bin/python3", ["-u", "/srv/jobs/train.py", "--epochs", i.ToString(CultureInfo.InvariantCulture)])
            {
                Environment = new Dictionary<string, string> { ["PYTHONHASHSEED"] = "0", ["DATASET"] = "/srv/data/set-" + (i % 17) },
                Limits = new ResourceLimits { CpuCores = 1.5, MemoryBytes = 512L << 20, MaxProcesses = 64 },
                Isolation = JobIsolation.Pid | JobIsolation.Mount,
                Owner = "CN=user" + (i % 50) + ",O=example",
            },
            RequestId = "req-" + i,
            CreatedAt = created,
            Final = i % 2 == 0 ? null : new JobStatus
            {
                State = JobState.Exited,
                Pid = 10_000 + i,
                ExitCode = 0,
                StartedAt = created.AddMilliseconds(2),
                EndedAt = created.AddSeconds(30),
                Usage = new JobUsage { CpuUsageMicroseconds = 29_000_000, MemoryPeakBytes = 300L << 20, OomKills = 0, PidsCurrent = 0 },
                LogBytes = 123_456,
            },
        };
    }
}
