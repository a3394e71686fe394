using System.Text;
using JobWorker.Core.Output;

namespace JobWorker.Core.Tests.Output;

public sealed class OutputLogTests
{
    private const int TenMiB = 10 << 20;

    [Fact(Timeout = 30_000)]
    public void ReadAsync_InvalidOptions_ThrowsBeforeEnumerating()
    {
        using var harness = LogHarness.Create();

        Assert.Throws<ArgumentOutOfRangeException>(() => harness.Log.ReadAsync(new OutputReadOptions { FromOffset = -1 }, TestContext.Current.CancellationToken));
        Assert.Throws<ArgumentOutOfRangeException>(() => harness.Log.ReadAsync(new OutputReadOptions { TailLines = -1 }, TestContext.Current.CancellationToken));
        Assert.Throws<ArgumentNullException>(() => harness.Log.ReadAsync(null!, TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 60_000)]
    public async Task ReadAsync_ReadersBeforeDuringAfter_10MiBRandomRoundTripsExactly()
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        var data = LogHarness.RandomBytes(TenMiB, seed: 10);
        var expected = LogHarness.Sha256(data);
        var follow = new OutputReadOptions { Follow = true };

        var before = OutputReader.ReadAllAsync(harness.Log, follow, ct);
        var writer = harness.WriteAndCloseAsync(data, pauseAt: TenMiB / 3);
        await harness.Paused.WaitAsync(ct);
        var during = OutputReader.ReadAllAsync(harness.Log, follow, ct);
        var duringPlain = OutputReader.ReadAllAsync(harness.Log, OutputReadOptions.Default, ct);
        harness.Resume();
        await writer.WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);
        var after = await OutputReader.ReadAllAsync(harness.Log, follow, ct);
        var afterPlain = await OutputReader.ReadAllAsync(harness.Log, OutputReadOptions.Default, ct);

        foreach (var result in new[] { await before, await during, after, afterPlain })
        {
            Assert.Equal(0, result.FirstOffset);
            Assert.Equal(TenMiB, result.ByteCount);
            Assert.Equal(expected, result.Sha256);
        }

        // A reader without follow that started mid-way gets a prefix: exactly what was stored when it got there.
        var partial = await duringPlain;
        Assert.True(partial.ByteCount >= TenMiB / 3 - (1 << 20), $"got {partial.ByteCount} bytes");
        Assert.Equal(LogHarness.Sha256(data.AsSpan(0, (int)partial.ByteCount)), partial.Sha256);
        Assert.Equal(TenMiB, new FileInfo(harness.Log.Path).Length);
    }

    [Fact(Timeout = 120_000)]
    public async Task ReadAsync_200FollowersWhileWriterRunsFlatOut_AllGetIdenticalBytesAndTheEnd()
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        var data = LogHarness.RandomBytes(4 << 20, seed: 200);
        var expected = LogHarness.Sha256(data);
        var follow = new OutputReadOptions { Follow = true };

        var followers = Enumerable.Range(0, 200)
            .Select(_ => Task.Run(() => OutputReader.ReadAllAsync(harness.Log, follow, ct, keepData: false), ct))
            .ToArray();
        await harness.WriteAndCloseAsync(data).WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);
        var results = await Task.WhenAll(followers);

        Assert.All(results, result =>
        {
            Assert.Equal(0, result.FirstOffset);
            Assert.Equal(data.Length, result.ByteCount);
            Assert.Equal(expected, result.Sha256);
        });
        Assert.Equal(0, harness.Log.ActiveReaders);
    }

    [Theory(Timeout = 30_000)]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(65_535)]
    [InlineData(65_536)]
    [InlineData(1_000_001)]
    [InlineData(2 << 20)]
    public async Task ReadAsync_FromOffsetK_YieldsExactlyTheBytesFromK(int k)
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        var data = LogHarness.RandomBytes(2 << 20, seed: k);
        await harness.WriteAndCloseAsync(data).WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);

        foreach (var follow in new[] { false, true })
        {
            var result = await OutputReader.ReadAllAsync(harness.Log, new OutputReadOptions { FromOffset = k, Follow = follow }, ct);

            Assert.Equal(data.Length - k, result.ByteCount);
            Assert.Equal(data.AsSpan(k).ToArray(), result.Data);
            if (result.ByteCount > 0)
            {
                Assert.Equal(k, result.FirstOffset);
            }
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task ReadAsync_FromOffsetPastEndWithFollow_WaitsThenYieldsFromThatOffset()
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        var data = LogHarness.RandomBytes(300_000, seed: 3);
        var writer = harness.WriteAndCloseAsync(data, pauseAt: 100_000);
        await harness.Paused.WaitAsync(ct);

        var pastEnd = await OutputReader.ReadAllAsync(harness.Log, new OutputReadOptions { FromOffset = 250_000 }, ct);
        Assert.Equal(0, pastEnd.ByteCount);

        var follower = OutputReader.ReadAllAsync(harness.Log, new OutputReadOptions { FromOffset = 250_000, Follow = true }, ct);
        harness.Resume();
        await writer.WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);
        var result = await follower;

        Assert.Equal(250_000, result.FirstOffset);
        Assert.Equal(data.AsSpan(250_000).ToArray(), result.Data);
    }

    public static TheoryData<string, int, string> TailCases => new()
    {
        { "", 3, "" },
        { "", 0, "" },
        { "a\nb\nc\n", 0, "" },
        { "a\nb\nc", 0, "" },
        { "a\nb\nc\n", 1, "c\n" },
        { "a\nb\nc", 1, "c" },
        { "a\nb\nc\n", 2, "b\nc\n" },
        { "a\nb\nc", 2, "b\nc" },
        { "a\nb\nc\n", 3, "a\nb\nc\n" },
        { "a\nb\nc", 3, "a\nb\nc" },
        { "a\nb\nc\n", 100, "a\nb\nc\n" },
        { "a\nb\nc", 100, "a\nb\nc" },
        { "\n", 1, "\n" },
        { "\n\n\n", 2, "\n\n" },
        { "no newline at all", 1, "no newline at all" },
        { "x\n\ny\n", 2, "\ny\n" },
    };

    [Theory(Timeout = 30_000)]
    [MemberData(nameof(TailCases))]
    public async Task ReadAsync_TailLines_StartsAtTheLastNLines(string content, int lines, string expected)
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        await harness.WriteAndCloseAsync(Encoding.UTF8.GetBytes(content)).WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);

        foreach (var follow in new[] { false, true })
        {
            var result = await OutputReader.ReadAllAsync(harness.Log, new OutputReadOptions { TailLines = lines, Follow = follow }, ct);

            Assert.Equal(expected, Encoding.UTF8.GetString(result.Data!));
            if (result.ByteCount > 0)
            {
                Assert.Equal(content.Length - expected.Length, result.FirstOffset);
            }
        }
    }

    [Theory(Timeout = 30_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ReadAsync_TailLinesOverLongLinesAcrossScanBuffers_IsExact(bool trailingNewline)
    {
        // Lines of 100 KiB, 1 MiB and 3 bytes with arbitrary binary content: the backwards scan crosses many 64 KiB
        // buffers and must count only '\n' bytes.
        var ct = TestContext.Current.CancellationToken;
        var random = new Random(7);
        var lineLengths = new[] { 100 * 1024, 1 << 20, 3, 70_000 };
        var output = new MemoryStream();
        var lineStarts = new List<long>();
        foreach (var length in lineLengths)
        {
            lineStarts.Add(output.Length);
            var line = new byte[length];
            random.NextBytes(line);
            line.AsSpan().Replace((byte)'\n', (byte)0);
            output.Write(line);
            output.WriteByte((byte)'\n');
        }

        if (!trailingNewline)
        {
            output.SetLength(output.Length - 1);
        }

        var data = output.ToArray();
        using var harness = LogHarness.Create();
        await harness.WriteAndCloseAsync(data).WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);

        for (int n = 1; n <= lineLengths.Length; n++)
        {
            // The scan itself is under test here, not its window: let it look back over the whole log.
            var result = await OutputReader.ReadAllAsync(harness.Log, new OutputReadOptions { TailLines = n, MaxTailScanBytes = long.MaxValue }, ct);
            long start = lineStarts[lineLengths.Length - n];
            Assert.Equal(start, result.FirstOffset);
            Assert.Equal(data.AsSpan((int)start).ToArray(), result.Data);
        }
    }

    [Theory(Timeout = 30_000)]
    // 100 lines of 10 bytes (1000 bytes). Window 95: it starts at 905, and the first whole line in it at 910.
    [InlineData(50, 95, 910, true)]
    // Window 100 starts exactly at a line (byte 899 is a newline): that line is whole.
    [InlineData(50, 100, 900, true)]
    // Enough lines inside the window: exact, not bounded.
    [InlineData(5, 95, 950, false)]
    [InlineData(10, 100, 900, false)]
    // A window as large as the log: everything, not bounded.
    [InlineData(500, 1000, 0, false)]
    [InlineData(500, 5000, 0, false)]
    public async Task ReadAsync_TailLinesBeyondScanWindow_StartsAtFirstWholeLineInWindowAndSaysSo(int lines, long window, long expectedStart, bool bounded)
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        var data = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 100).Select(i => $"line {i:D4}\n")));
        await harness.WriteAndCloseAsync(data).WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);

        var chunks = new List<(long Offset, byte[] Data, bool TailBounded)>();
        await foreach (var chunk in harness.Log.ReadAsync(new OutputReadOptions { TailLines = lines, MaxTailScanBytes = window }, ct))
        {
            chunks.Add((chunk.Offset, chunk.Data.ToArray(), chunk.TailBounded));
        }

        Assert.Equal(expectedStart, chunks[0].Offset);
        Assert.Equal(bounded, chunks[0].TailBounded);
        Assert.All(chunks.Skip(1), c => Assert.False(c.TailBounded));
        Assert.Equal(data.AsSpan((int)expectedStart).ToArray(), chunks.SelectMany(c => c.Data).ToArray());
    }

    [Fact(Timeout = 30_000)]
    public async Task ReadAsync_TailLinesBeyondScanWindowWithoutNewline_StartsAtTheWindow()
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        var data = new byte[1000];
        Array.Fill(data, (byte)'x');
        await harness.WriteAndCloseAsync(data).WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);

        var result = await OutputReader.ReadAllAsync(harness.Log, new OutputReadOptions { TailLines = 3, MaxTailScanBytes = 100 }, ct);

        Assert.Equal(900, result.FirstOffset);
        Assert.Equal(100, result.ByteCount);
    }

    [Fact(Timeout = 30_000)]
    public async Task ReadAsync_TailLinesWithFollow_ContinuesWithNewLines()
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        var data = Encoding.UTF8.GetBytes("one\ntwo\nthree\nfour\n");
        var writer = harness.WriteAndCloseAsync(data, pauseAt: "one\ntwo\nthree\n".Length);
        await harness.Paused.WaitAsync(ct);
        await OutputReader.WaitForLengthAsync(harness.Log, "one\ntwo\nthree\n".Length, ct);

        var follower = OutputReader.ReadAllAsync(harness.Log, new OutputReadOptions { TailLines = 1, Follow = true }, ct);
        harness.Resume();
        await writer.WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);

        Assert.Equal("three\nfour\n", Encoding.UTF8.GetString((await follower).Data!));
    }

    [Fact(Timeout = 30_000)]
    public async Task ReadAsync_FollowCompletedLog_GetsEverythingAndEndsImmediately()
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        var data = LogHarness.RandomBytes(500_000, seed: 6);
        await harness.WriteAndCloseAsync(data).WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);

        // No writer will ever signal again: if the follower waited, the timeout would fail the test.
        var result = await OutputReader.ReadAllAsync(harness.Log, new OutputReadOptions { Follow = true }, ct).WaitAsync(TimeSpan.FromSeconds(10), ct);

        Assert.Equal(data, result.Data);
    }

    [Fact(Timeout = 30_000)]
    public async Task ReadAsync_FollowEmptyCompletedLog_EndsImmediately()
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        harness.CloseWriteEnd();
        await harness.CompleteWhenDrainedAsync(ct);

        var result = await OutputReader.ReadAllAsync(harness.Log, new OutputReadOptions { Follow = true }, ct).WaitAsync(TimeSpan.FromSeconds(10), ct);

        Assert.Equal(0, result.ByteCount);
    }

    [Fact(Timeout = 30_000)]
    public async Task ReadAsync_CancelWaitingFollower_ReleasesItAtOnce()
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        var data = LogHarness.RandomBytes(1000, seed: 8);
        var writer = harness.WriteAndCloseAsync(data, pauseAt: 500);
        await harness.Paused.WaitAsync(ct);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var follower = Task.Run(async () =>
        {
            await foreach (var chunk in harness.Log.ReadAsync(new OutputReadOptions { Follow = true }, cancel.Token))
            {
                if (chunk.Offset + chunk.Data.Length >= 500)
                {
                    seen.TrySetResult();
                }
            }
        }, ct);
        await seen.Task.WaitAsync(ct);
        Assert.Equal(1, harness.Log.ActiveReaders);

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => follower);
        Assert.Equal(0, harness.Log.ActiveReaders);
        harness.Resume();
        await writer.WaitAsync(ct);
    }

    [Fact(Timeout = 30_000)]
    public async Task ReadAsync_BreakOutOfEnumeration_ReleasesReader()
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        await harness.WriteAndCloseAsync(LogHarness.RandomBytes(300_000, seed: 9)).WaitAsync(ct);
        await harness.CompleteWhenDrainedAsync(ct);

        await foreach (var _ in harness.Log.ReadAsync(OutputReadOptions.Default, ct))
        {
            Assert.Equal(1, harness.Log.ActiveReaders);
            break;
        }

        Assert.Equal(0, harness.Log.ActiveReaders);
    }

    [Fact(Timeout = 30_000)]
    public async Task Dispose_WhileFollowerWaits_FollowerFailsWithObjectDisposed()
    {
        var ct = TestContext.Current.CancellationToken;
        using var harness = LogHarness.Create();
        var follower = OutputReader.ReadAllAsync(harness.Log, new OutputReadOptions { Follow = true }, ct);
        Assert.False(follower.IsCompleted);

        File.Delete(harness.Log.Path);
        harness.Log.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => follower.WaitAsync(TimeSpan.FromSeconds(10), ct));
    }
}
