using System.Collections.Concurrent;
using System.Globalization;
using System.Text.RegularExpressions;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

/// <summary>
/// A process outside the job that holds the output pipe's write end must not keep the job from ending, and must
/// not add bytes to a log already reported final.
/// </summary>
public sealed partial class JobOutputCutTests
{
    private static readonly TimeSpan EofTimeout = TimeSpan.FromMilliseconds(500);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 30_000)]
    public async Task End_WriterOutsideTheCgroupKeepsThePipe_ReadingStopsLogFinalEndTimeKept()
    {
        await using var t = TestRunner.Create(o => o with { OutputEofTimeout = EofTimeout });
        var errors = new ConcurrentQueue<JobBackgroundErrorEventArgs>();
        t.Runner.BackgroundError += (_, e) => errors.Enqueue(e);

        // A group of the test's own, outside the runner's subtree: the writer is moved there, so it survives the
        // job's cgroup.kill with the pipe's write end (what a process given the fd over a unix socket would do).
        var outside = Path.Combine(TestRunner.CgroupMount, "jobworker-test-outside-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(outside);
        var tickerPid = 0;
        try
        {
            var job = t.Start("ticker", "20", "sleep", "60");
            var output = await t.WaitForOutputAsync(job, "ticker ", Ct);
            tickerPid = int.Parse(TickerLine().Match(output).Groups[1].Value, CultureInfo.InvariantCulture);
            File.WriteAllText(Path.Combine(outside, "cgroup.procs"), tickerPid.ToString(CultureInfo.InvariantCulture));

            var stopAt = DateTimeOffset.UtcNow;
            var status = await job.StopAsync(TimeSpan.Zero, Ct);
            var endSeen = DateTimeOffset.UtcNow;

            Assert.Equal(JobState.Stopped, status.State);
            // The end time is the main process's exit, not the moment reading stopped: that is at least EofTimeout
            // later, as the writer kept the pipe open.
            Assert.NotNull(status.EndedAt);
            Assert.InRange(status.EndedAt.Value, stopAt, endSeen - EofTimeout);

            // Reading stopped: the pipe's read end is closed, so the writer's next write kills it with SIGPIPE ...
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (TestRunner.ProcessExists(tickerPid) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20, Ct);
            }

            Assert.False(TestRunner.ProcessExists(tickerPid), "the writer still runs: the pipe's read end was not closed");

            // ... and nothing was added to the log after its final length.
            Assert.Equal(status.LogBytes, new FileInfo(t.LogPath(job)).Length);
            Assert.Equal(status.LogBytes, job.Status.LogBytes);
            long read = 0;
            await foreach (var chunk in job.ReadOutputAsync(new() { Follow = true }, Ct))
            {
                read += chunk.Data.Length;
            }

            Assert.Equal(status.LogBytes, read);
            var error = Assert.Single(errors, e => e.JobId == job.Id);
            Assert.Contains("write end", error.Exception.Message, StringComparison.Ordinal);
        }
        finally
        {
            if (tickerPid > 0 && TestRunner.ProcessExists(tickerPid))
            {
                System.Diagnostics.Process.GetProcessById(tickerPid).Kill();
            }

            await RemoveGroupAsync(outside);
        }
    }

    private static async Task RemoveGroupAsync(string group)
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            try
            {
                Directory.Delete(group);
                return;
            }
            catch (IOException)
            {
                await Task.Delay(25, CancellationToken.None); // still populated until the killed writer is gone
            }
        }

        Directory.Delete(group);
    }

    [GeneratedRegex(@"ticker (\d+)\n")]
    private static partial Regex TickerLine();
}
