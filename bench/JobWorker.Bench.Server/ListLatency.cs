using System.Diagnostics;
using System.Globalization;
using JobWorker.Core.Jobs;
using JobWorker.Core.State;
using JobWorker.Protocol.V1;
using CoreJobState = JobWorker.Core.Jobs.JobState;

namespace JobWorker.Bench.Server;

/// <summary>
/// ListJobs with many jobs: one page of 100 (the first, and one from the middle by its page token) against GetJob of
/// one job, same server, same connection, rounds interleaved. Beside them the bare service (no identity, policy or
/// Core) answers with the same status and page as prepared messages, and with the page's size in one string field:
/// what carrying them costs, with and without the entries' messages. The jobs are ended jobs' records written into the state
/// directory before the server starts, which loads them as after a restart.
/// </summary>
internal static class ListLatency
{
    private const int Rounds = 5;

    /// <summary>Writes <paramref name="count"/> ended jobs owned by <paramref name="owner"/> into <paramref name="stateDirectory"/>.</summary>
    public static void Seed(string stateDirectory, int count, string owner)
    {
        using var store = FileJobStore.Open(stateDirectory);
        var first = DateTimeOffset.UtcNow.AddDays(-1);
        for (var i = 0; i < count; i++)
        {
            var created = first.AddMilliseconds(i);
            store.Create(new JobRecord
            {
                Id = Guid.NewGuid(),
                // Arguments of a typical size; list entries carry at most 1 KiB of them anyway.
                Spec = new JobSpec("/usr/bin/python3", ["-u", "/srv/jobs/train.py", "--epochs", i.ToString(CultureInfo.InvariantCulture)])
                {
                    Owner = owner,
                    Limits = new Core.Jobs.ResourceLimits { CpuCores = 1.5, MemoryBytes = 512L << 20, MaxProcesses = 64 },
                },
                CreatedAt = created,
                Final = new Core.Jobs.JobStatus
                {
                    State = CoreJobState.Exited,
                    Pid = 10_000 + i,
                    ExitCode = 0,
                    StartedAt = created.AddMilliseconds(0.5),
                    EndedAt = created.AddSeconds(30),
                    Usage = new JobUsage { CpuUsageMicroseconds = 29_000_000, MemoryPeakBytes = 300L << 20, OomKills = 0, PidsCurrent = 0 },
                    LogBytes = 123_456,
                },
            });
        }
    }

    public static async Task RunAsync(Protocol.V1.JobWorker.JobWorkerClient client, Protocol.V1.JobWorker.JobWorkerClient bare, int jobs, int calls)
    {
        var first = await client.ListJobsAsync(new ListJobsRequest { PageSize = 100 });
        // The bare service answers with the same messages: what carrying this page and one status over gRPC costs.
        BareService.Page = first;
        BareService.Blob = new ListJobsResponse { NextPageToken = new string('x', first.CalculateSize() - 3) };
        BareService.Status = (await client.GetJobAsync(new GetJobRequest { JobId = first.Jobs[0].JobId })).Job;
        var middleToken = first.NextPageToken;
        // Walk to the middle of the listing for a page that starts mid-index.
        var walked = await WalkAsync(client, jobs / 2);
        middleToken = walked ?? middleToken;
        var getJob = new GetJobRequest { JobId = first.Jobs[0].JobId };
        var firstPage = new ListJobsRequest { PageSize = 100 };
        var middlePage = new ListJobsRequest { PageSize = 100, PageToken = middleToken };
        var fullPage = new ListJobsRequest { PageSize = 100, View = JobView.Full };
        var allPages = await CountPagesAsync(client);
        var full = await client.ListJobsAsync(fullPage);
        Console.WriteLine($"{jobs} jobs; a page of 100 is {first.CalculateSize()} bytes ({full.CalculateSize()} in the full view); listing all takes {allPages} pages of 1000");

        for (var i = 0; i < 500; i++)
        {
            await client.GetJobAsync(getJob);
            await client.ListJobsAsync(firstPage);
            await client.ListJobsAsync(middlePage);
            await client.ListJobsAsync(fullPage);
            await bare.GetJobAsync(getJob);
            await bare.ListJobsAsync(firstPage);
        }

        var get = new List<double>();
        var listFirst = new List<double>();
        var listMiddle = new List<double>();
        var listFull = new List<double>();
        var bareGet = new List<double>();
        var bareList = new List<double>();
        var bareBlob = new List<double>();
        var blobPage = new ListJobsRequest { PageToken = "blob" };
        var perRound = calls / Rounds;
        for (var round = 0; round < Rounds; round++)
        {
            get.AddRange(await MeasureAsync(() => client.GetJobAsync(getJob).ResponseAsync, perRound));
            listFirst.AddRange(await MeasureAsync(() => client.ListJobsAsync(firstPage).ResponseAsync, perRound));
            listMiddle.AddRange(await MeasureAsync(() => client.ListJobsAsync(middlePage).ResponseAsync, perRound));
            listFull.AddRange(await MeasureAsync(() => client.ListJobsAsync(fullPage).ResponseAsync, perRound));
            bareGet.AddRange(await MeasureAsync(() => bare.GetJobAsync(getJob).ResponseAsync, perRound));
            bareList.AddRange(await MeasureAsync(() => bare.ListJobsAsync(firstPage).ResponseAsync, perRound));
            bareBlob.AddRange(await MeasureAsync(() => bare.ListJobsAsync(blobPage).ResponseAsync, perRound));
        }

        var all = Stopwatch.StartNew();
        await CountPagesAsync(client);
        all.Stop();

        var (g50, g99) = (Percentile(get, 0.5), Percentile(get, 0.99));
        Console.WriteLine();
        Console.WriteLine("| call | p50 | p99 | p50 vs GetJob |");
        Console.WriteLine("|---|---:|---:|---:|");
        Console.WriteLine(FormattableString.Invariant($"| GetJob | {g50:0.000} ms | {g99:0.000} ms | 1.00x |"));
        foreach (var (name, values) in new[]
        {
            ("ListJobs, first page of 100", listFirst),
            ("ListJobs, a middle page of 100 (page token)", listMiddle),
            ("ListJobs, first page of 100, full view (limits, isolation, usage)", listFull),
            ("bare service: GetJob's status, prepared", bareGet),
            ("bare service: the first page, prepared", bareList),
            ("bare service: as many bytes in one string field", bareBlob),
        })
        {
            Console.WriteLine(FormattableString.Invariant($"| {name} | {Percentile(values, 0.5):0.000} ms | {Percentile(values, 0.99):0.000} ms | {Percentile(values, 0.5) / g50:0.00}x |"));
        }

        Console.WriteLine(FormattableString.Invariant($"\nall {jobs} jobs in pages of 1000: {all.Elapsed.TotalMilliseconds:0.0} ms; {calls} calls of each kind, {Environment.ProcessorCount} cores, .NET {Environment.Version}"));
    }

    private static async Task<string?> WalkAsync(Protocol.V1.JobWorker.JobWorkerClient client, int skip)
    {
        var token = "";
        for (var seen = 0; seen < skip;)
        {
            var page = await client.ListJobsAsync(new ListJobsRequest { PageSize = 1000, PageToken = token });
            seen += page.Jobs.Count;
            token = page.NextPageToken;
            if (token.Length == 0)
            {
                return null;
            }
        }

        return token;
    }

    private static async Task<int> CountPagesAsync(Protocol.V1.JobWorker.JobWorkerClient client)
    {
        var pages = 0;
        var token = "";
        do
        {
            token = (await client.ListJobsAsync(new ListJobsRequest { PageSize = 1000, PageToken = token })).NextPageToken;
            pages++;
        }
        while (token.Length > 0);
        return pages;
    }

    private static async Task<List<double>> MeasureAsync(Func<Task> call, int count)
    {
        var latencies = new List<double>(count);
        for (var i = 0; i < count; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await call();
            latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        return latencies;
    }

    private static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToList();
        return sorted[(int)Math.Min(sorted.Count - 1, Math.Round(p * (sorted.Count - 1)))];
    }
}
