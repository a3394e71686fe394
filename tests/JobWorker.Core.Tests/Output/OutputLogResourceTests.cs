using JobWorker.Core.Output;

namespace JobWorker.Core.Tests.Output;

/// <summary>Runs alone: it counts the process's open file descriptors, which parallel tests would disturb.</summary>
[CollectionDefinition(nameof(RunsAlone), DisableParallelization = true)]
public sealed class RunsAlone;

[Collection(nameof(RunsAlone))]
public sealed class OutputLogResourceTests
{
    [Fact(Timeout = 60_000)]
    public async Task ReadAsync_500Followers_OpenFdCountSameAsWithOne()
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        var data = LogHarness.RandomBytes(200_000, seed: 11);
        const int Paused = 100_000;
        var writer = harness.WriteAndCloseAsync(data, pauseAt: Paused);
        await harness.Paused.WaitAsync(ct);
        await OutputReader.WaitForLengthAsync(harness.Log, Paused, ct);

        var followers = new List<Task<ReadResult>>();
        var caughtUp = new List<Task>();
        void StartFollowers(int count)
        {
            for (int i = 0; i < count; i++)
            {
                var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                caughtUp.Add(seen.Task);
                followers.Add(Task.Run(async () =>
                {
                    var result = await OutputReader.ReadAllAsync(harness.Log, new OutputReadOptions { Follow = true }, ct, keepData: false, onChunk: chunk =>
                    {
                        if (chunk.Offset + chunk.Data.Length >= Paused)
                        {
                            seen.TrySetResult();
                        }
                    });
                    return result;
                }, ct));
            }
        }

        StartFollowers(1);
        await Task.WhenAll(caughtUp).WaitAsync(ct);
        int fdsWithOne = CountOpenFds();
        var fdTargetsWithOne = FdTargets();
        StartFollowers(499);
        await Task.WhenAll(caughtUp).WaitAsync(ct);
        int fdsWith500 = CountOpenFds();
        var fdTargetsWith500 = FdTargets();
        Assert.Equal(500, harness.Log.ActiveReaders);
        harness.Resume();
        await writer.WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);
        var results = await Task.WhenAll(followers).WaitAsync(ct);

        Assert.True(fdsWithOne == fdsWith500, $"{fdsWithOne} fds with 1 follower, {fdsWith500} with 500: {string.Join(", ", fdTargetsWithOne.Except(fdTargetsWith500))} / {string.Join(", ", fdTargetsWith500.Except(fdTargetsWithOne))}");
        Assert.All(results, result => Assert.Equal(data.Length, result.ByteCount));
        Assert.Equal(0, harness.Log.ActiveReaders);
    }

    [Fact(Timeout = 60_000)]
    public async Task ReadAsync_ReaderThatStopsReading_NeverSlowsTheWriter()
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        var data = LogHarness.RandomBytes(16 << 20, seed: 12);

        // This follower takes one chunk and then never asks for the next while the job writes everything.
        await using var stalled = harness.Log.ReadAsync(new OutputReadOptions { Follow = true }, ct).GetAsyncEnumerator(ct);
        var first = stalled.MoveNextAsync().AsTask();
        await harness.WriteAndCloseAsync(data).WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);

        Assert.True(await first);
        Assert.Equal(data.Length, harness.Log.Length);
        Assert.Equal(LogHarness.Sha256(data), LogHarness.Sha256(File.ReadAllBytes(harness.Log.Path)));
    }

    private static List<string> FdTargets()
        => Directory.GetFileSystemEntries("/proc/self/fd").Select(fd => fd + "->" + new FileInfo(fd).LinkTarget).ToList();

    private static int CountOpenFds()
    {
        // Handles other tests dropped without disposing would otherwise be closed by finalizers mid-measurement.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return CountEntries();
    }

    private static int CountEntries() => Directory.GetFileSystemEntries("/proc/self/fd").Length;
}
