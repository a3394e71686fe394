// concurrent N [--server-pid PID] [--seconds S] [CMD [ARGS...]]
// Starts one job through the server and follows its output with N concurrent streams. Prints, per follower,
// the bytes received and the delivery latency, and the server's threads, open fds and resident memory before
// and while the followers are attached, so the cost of one follower can be read off.
// Without CMD the job prints a nanosecond timestamp 20 times a second, so latency is job-write -> follower-read;
// with your own CMD latency is measured against the first follower to receive the same byte.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Grpc.Core;
using JobWorker.Examples.Concurrent;
using JobWorker.Protocol.V1;
using JobWorkerClient = JobWorker.Protocol.V1.JobWorker.JobWorkerClient;

if (args.Length == 0 || !int.TryParse(args[0], NumberStyles.None, CultureInfo.InvariantCulture, out var followers) || followers < 1)
{
    Console.Error.WriteLine("usage: concurrent N [--server-pid PID] [--seconds S] [CMD [ARGS...]]");
    return 2;
}

int? serverPid = null;
var seconds = 10;
var rest = args[1..].ToList();
while (rest.Count >= 2 && rest[0] is "--server-pid" or "--seconds")
{
    if (rest[0] == "--server-pid")
    {
        serverPid = int.Parse(rest[1], CultureInfo.InvariantCulture);
    }
    else
    {
        seconds = int.Parse(rest[1], CultureInfo.InvariantCulture);
    }

    rest.RemoveRange(0, 2);
}

if (rest.Count > 0 && rest[0] == "--")
{
    rest.RemoveAt(0);
}

var timestamps = rest.Count == 0;
var command = timestamps
    ? new List<string> { "/bin/sh", "-c", "while :; do date +%s%N; sleep 0.05; done" }
    : rest;

var (channel, server) = ClientConnection.Open();
using var _ = channel;
var client = new JobWorkerClient(channel);
serverPid ??= ServerFigures.FindListener(server.Port);
Console.Error.WriteLine(serverPid is null
    ? $"concurrent: server process not found on port {server.Port} (pass --server-pid PID): server figures omitted"
    : $"concurrent: server pid {serverPid}");

var before = serverPid is { } p0 ? ServerFigures.Read(p0) : null;
var start = new StartJobRequest { Command = command[0] };
start.Args.AddRange(command.Skip(1));
var job = (await client.StartJobAsync(start)).Job;
Console.Error.WriteLine($"concurrent: job {job.JobId} started; {followers} followers for {seconds}s");

using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
var clock = Stopwatch.StartNew();
// First arrival time of each line end offset, shared by followers for the "own command" latency.
var firstSeen = new System.Collections.Concurrent.ConcurrentDictionary<long, long>();
var results = new FollowerResult[followers];
var tasks = Enumerable.Range(0, followers).Select(i => Task.Run(async () =>
{
    var result = results[i] = new FollowerResult();
    var pending = new StringBuilder();
    try
    {
        using var call = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true, FromOffset = 0 }, cancellationToken: cts.Token);
        await foreach (var message in call.ResponseStream.ReadAllAsync(cts.Token))
        {
            if (message.KindCase != StreamOutputResponse.KindOneofCase.Chunk)
            {
                break;
            }

            var nowTicks = clock.ElapsedTicks;
            var data = message.Chunk.Data;
            result.Bytes += data.Length;
            result.Messages++;
            if (timestamps)
            {
                pending.Append(data.ToStringUtf8());
                var text = pending.ToString();
                var lines = text.Split('\n');
                foreach (var line in lines[..^1])
                {
                    if (long.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out var ns))
                    {
                        var written = DateTimeOffset.FromUnixTimeMilliseconds(ns / 1_000_000).AddTicks(ns % 1_000_000 / 100);
                        result.LatenciesMs.Add((DateTimeOffset.UtcNow - written).TotalMilliseconds);
                    }
                }

                pending.Clear().Append(lines[^1]);
            }
            else
            {
                var end = message.Chunk.Offset + data.Length;
                var first = firstSeen.GetOrAdd(end, nowTicks);
                result.LatenciesMs.Add((nowTicks - first) * 1000.0 / Stopwatch.Frequency);
            }
        }
    }
    catch (Exception ex) when (ex is OperationCanceledException || ex is RpcException { StatusCode: StatusCode.Cancelled })
    {
        // The measuring window ended.
    }
    catch (RpcException ex)
    {
        result.Error = $"{ex.StatusCode}: {ex.Status.Detail}";
    }
})).ToArray();

// Sample the server once a second while the followers are attached.
ServerFigures? during = null;
while (!cts.IsCancellationRequested)
{
    try
    {
        await Task.Delay(TimeSpan.FromSeconds(1), cts.Token);
    }
    catch (OperationCanceledException)
    {
        break;
    }

    if (serverPid is { } pid && ServerFigures.Read(pid) is { } figures)
    {
        during = figures;
        Console.Error.WriteLine($"  t={clock.Elapsed.TotalSeconds:0}s server: threads {figures.Threads}, fds {figures.Fds}, rss {figures.RssBytes / 1024.0 / 1024:0.0} MiB; received {results.Where(r => r is not null).Sum(r => r.Bytes)} bytes in total");
    }
}

await Task.WhenAll(tasks);
await client.StopJobAsync(new StopJobRequest { JobId = job.JobId });
await client.RemoveJobAsync(new RemoveJobRequest { JobId = job.JobId });

Console.WriteLine($"{"follower",8} {"bytes",10} {"messages",9} {"p50 ms",8} {"p99 ms",8} {"max ms",8}  error");
for (var i = 0; i < results.Length; i++)
{
    var r = results[i];
    var sorted = r.LatenciesMs.Order().ToArray();
    string Q(double q) => sorted.Length == 0 ? "-" : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))].ToString("0.00", CultureInfo.InvariantCulture);
    Console.WriteLine($"{i,8} {r.Bytes,10} {r.Messages,9} {Q(0.50),8} {Q(0.99),8} {(sorted.Length == 0 ? "-" : sorted[^1].ToString("0.00", CultureInfo.InvariantCulture)),8}  {r.Error}");
}

var identical = results.Select(r => r.Bytes).Distinct().Count() == 1;
Console.WriteLine($"all followers received the same byte count: {(identical ? "yes" : "no (the window ended mid-delivery for some)")}");
var all = results.SelectMany(r => r.LatenciesMs).Order().ToArray();
if (all.Length > 0)
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"latency over all followers ({(timestamps ? "job write -> follower" : "first follower -> each follower")}): p50 {all[all.Length / 2]:0.00} ms, p99 {all[Math.Min(all.Length - 1, (int)(0.99 * all.Length))]:0.00} ms, max {all[^1]:0.00} ms"));
}

if (before is not null && during is not null)
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"server before: threads {before.Threads}, fds {before.Fds}, rss {before.RssBytes / 1024.0 / 1024:0.0} MiB; with {followers} followers: threads {during.Threads}, fds {during.Fds}, rss {during.RssBytes / 1024.0 / 1024:0.0} MiB; per follower: {(during.RssBytes - before.RssBytes) / 1024.0 / followers:0.0} KiB, {(during.Fds - before.Fds) / (double)followers:0.00} fds"));
}

return results.Any(r => r.Error is not null) ? 1 : 0;
