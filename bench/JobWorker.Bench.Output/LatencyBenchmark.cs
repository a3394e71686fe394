using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using JobWorker.Core;
using JobWorker.Core.Output;
using JobWorker.Core.Processes;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Bench.Output;

/// <summary>
/// Delivery latency: a writer thread appends 16-byte messages (its <see cref="Stopwatch"/> timestamp and a sequence
/// number) to a log file every few milliseconds, as a job's supervisor does; the log learns of each append exactly as
/// the runner does (an inotify <see cref="LogWatcher"/> on the runner's <see cref="EventLoop"/>); N followers read the
/// log with <c>Follow</c> and take the time each message arrives. The latency is write() → follower has the bytes,
/// over every (follower, message) pair. RSS and fds are measured before the
/// followers start, with all of them waiting, and after the last message.
/// </summary>
internal static class LatencyBenchmark
{
    private const int MessageSize = 16;

    public static async Task RunAsync(BenchOptions options)
    {
        Console.WriteLine($"## Delivery latency: {options.Messages} messages of {MessageSize} B, one every {options.IntervalMilliseconds} ms, write() → follower sees it");
        Console.WriteLine();
        Console.WriteLine("| followers | p50 ms | p99 ms | max ms | RSS before | RSS with followers waiting | per follower | RSS after messages | fds before → waiting → after |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        // Warm-up (JIT, thread pool, first GC): not reported, so the first row measures followers, not startup.
        await RunOneAsync(options with { Messages = 20 }, 10, report: false);
        foreach (int followers in options.Followers)
        {
            await RunOneAsync(options, followers, report: true);
        }

        Console.WriteLine();
    }

    private static async Task RunOneAsync(BenchOptions options, int followerCount, bool report)
    {
        var directory = Directory.CreateTempSubdirectory("jobworker-bench-latency-");
        var loopError = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var loop = new EventLoop(loopError.SetException);
        using var watcher = new LogWatcher(loop);
        var path = Path.Combine(directory.FullName, "output.log");

        // The writer plays the job's supervisor: it appends to the log file; followers learn of it through inotify.
        var writeEnd = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite);
        using var log = new OutputLog(path, 1L << 30, watcher);
        try
        {
            Settle();
            long rssBefore = ProcessProbe.RssBytes();
            int fdsBefore = ProcessProbe.OpenFds();

            // Message 0 is a warm-up every follower must see before measuring starts, so all are waiting.
            var latencies = new long[followerCount][];
            var warmedUp = new CountdownEvent(followerCount);
            var tasks = new Task[followerCount];
            for (int i = 0; i < followerCount; i++)
            {
                latencies[i] = new long[options.Messages];
                var mine = latencies[i];
                tasks[i] = Task.Run(() => FollowAsync(log, mine, warmedUp));
            }

            WriteMessage(writeEnd, 0);
            await Task.Run(warmedUp.Wait);
            Settle();
            long rssWaiting = ProcessProbe.RssBytes();
            int fdsWaiting = ProcessProbe.OpenFds();

            // The writer paces itself with sleeps: it plays a job; nothing on the reading side sleeps or polls.
            var writer = new Thread(() =>
            {
                for (int m = 1; m <= options.Messages; m++)
                {
                    Thread.Sleep(options.IntervalMilliseconds);
                    WriteMessage(writeEnd, m);
                }
            });
            writer.Start();
            writer.Join();
            long rssAfter = ProcessProbe.RssBytes();
            writeEnd.Dispose();
            log.Complete(new FileInfo(path).Length);
            await Task.WhenAny(Task.WhenAll(tasks), loopError.Task).Unwrap();
            int fdsAfter = ProcessProbe.OpenFds();

            var all = latencies.SelectMany(l => l).Order().ToArray();
            if (all.Any(l => l <= 0))
            {
                throw new InvalidOperationException("a follower missed a message");
            }

            if (!report)
            {
                return;
            }

            Console.WriteLine(
                $"| {followerCount} | {ProcessProbe.Percentile(all, 50):F3} | {ProcessProbe.Percentile(all, 99):F3} | {ProcessProbe.Percentile(all, 100):F3} " +
                $"| {Mib(rssBefore)} | {Mib(rssWaiting)} | {(rssWaiting - rssBefore) / 1024.0 / followerCount:F1} KiB " +
                $"| {Mib(rssAfter)} | {fdsBefore} → {fdsWaiting} → {fdsAfter} |");
        }
        finally
        {
            writeEnd.Dispose();
            log.Dispose();
            directory.Delete(recursive: true);
        }
    }

    private static async Task FollowAsync(OutputLog log, long[] latencies, CountdownEvent warmedUp)
    {
        // A follower may read a message half appended: carry the partial bytes over.
        var carry = new byte[MessageSize];
        int carried = 0;
        await foreach (var chunk in log.ReadAsync(new OutputReadOptions { Follow = true }))
        {
            long now = Stopwatch.GetTimestamp();
            var data = chunk.Data.Span;
            while (!data.IsEmpty)
            {
                int take = Math.Min(MessageSize - carried, data.Length);
                data[..take].CopyTo(carry.AsSpan(carried));
                carried += take;
                data = data[take..];
                if (carried == MessageSize)
                {
                    carried = 0;
                    long written = BinaryPrimitives.ReadInt64LittleEndian(carry);
                    long sequence = BinaryPrimitives.ReadInt64LittleEndian(carry.AsSpan(8));
                    if (sequence == 0)
                    {
                        warmedUp.Signal();
                    }
                    else
                    {
                        latencies[sequence - 1] = now - written;
                    }
                }
            }
        }
    }

    private static unsafe void WriteMessage(SafeFileHandle writeEnd, long sequence)
    {
        byte* message = stackalloc byte[MessageSize];
        var span = new Span<byte>(message, MessageSize);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], sequence);
        BinaryPrimitives.WriteInt64LittleEndian(span, Stopwatch.GetTimestamp());
        if (Interop.Io.Write(writeEnd, message, MessageSize) != MessageSize)
        {
            throw new IOException($"write failed: {Marshal.GetLastPInvokeError()}");
        }
    }

    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private static string Mib(long bytes) => $"{bytes / 1048576.0:F1} MiB";
}
