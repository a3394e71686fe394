using System.Text;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

/// <summary>
/// A job whose final status has been published must be removable at once: what <c>worker run --rm</c> does
/// (follow to the end, then remove).
/// </summary>
public sealed class JobRemoveTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 30_000)]
    public async Task Remove_FollowerSawTheEndWhileCgroupRemovalIsSlow_RemovedAndNothingLeft()
    {
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "done", "sleep", "0.5", "exit", "0");

        // An empty child group makes rmdir of the job's group fail with EBUSY, as the kernel does for a moment
        // after the last process left; the runner retries. The test owns this group and removes it 0.5 s after
        // the job's own exit, while the job's end is in progress.
        var hold = Path.Combine(job.CgroupPath, "hold");
        Directory.CreateDirectory(hold);
        var release = Task.Run(
            async () =>
            {
                await Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None);
                Directory.Delete(hold);
            },
            CancellationToken.None);
        try
        {
            var output = await ReadToEndAsync(job);

            Assert.Equal("done\n", output);
            Assert.True(job.Status.HasEnded);
            t.Runner.Remove(job);

            Assert.False(t.Runner.TryGetJob(job.Id, out _));
            Assert.False(File.Exists(t.LogPath(job)));
            Assert.False(Directory.Exists(job.CgroupPath));
        }
        finally
        {
            await release;
        }
    }

    /// <summary>The natural race: the follower wakes on the log's completion while the job's end goes on.</summary>
    [Fact(Timeout = 120_000)]
    [Trait("Category", "Stress")]
    public async Task Remove_FollowToEndThenRemove_ManyCycles_NeverRefused()
    {
        const int Cycles = 800;
        const int Parallel = 4;
        await using var t = TestRunner.Create();
        var refused = 0;
        var next = 0;

        async Task WorkerAsync()
        {
            while (Interlocked.Increment(ref next) <= Cycles)
            {
                var job = t.Start("echo", "x");
                Assert.Equal("x\n", await ReadToEndAsync(job));
                Assert.True(job.Status.HasEnded);
                try
                {
                    t.Runner.Remove(job);
                }
                catch (InvalidOperationException)
                {
                    Interlocked.Increment(ref refused);
                    await job.Completion.WaitAsync(Ct);
                    t.Runner.Remove(job);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Parallel).Select(_ => Task.Run(WorkerAsync, Ct)));

        Assert.Equal(0, refused);
        Assert.Empty(t.Runner.Jobs);
        Assert.Empty(t.JobDirectories());
        Assert.Empty(t.GroupsLeft());
    }

    private static async Task<string> ReadToEndAsync(Job job)
    {
        var bytes = new List<byte>();
        await foreach (var chunk in job.ReadOutputAsync(new() { Follow = true }, Ct))
        {
            bytes.AddRange(chunk.Data.Span);
        }

        return Encoding.UTF8.GetString([.. bytes]);
    }
}
