using System.Text;
using JobWorker.Core.Jobs;
using JobWorker.Core.Output;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Output;

/// <summary>Output end to end: real jobs started by a <see cref="JobRunner"/>, read through <see cref="Job.ReadOutputAsync"/>.</summary>
public sealed class JobOutputTests
{
    [Fact(Timeout = 30_000)]
    public async Task ReadOutputAsync_OneMiBThenExit_LosesNothing()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var t = TestRunner.Create();
        const int Size = 1 << 20;

        var job = t.Start("print", Size.ToString(System.Globalization.CultureInfo.InvariantCulture), "exit", "0");
        var follower = OutputReader.ReadAllAsync(job.Log, new OutputReadOptions { Follow = true }, ct);
        var status = await job.Completion.WaitAsync(ct);
        var after = await ReadAllAsync(job, OutputReadOptions.Default, ct);

        var expected = TestProcessPrint(Size);
        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal(Size, status.LogBytes);
        Assert.False(status.LogTruncated);
        Assert.Equal(expected, (await follower).Data);
        Assert.Equal(expected, after);
    }

    [Fact(Timeout = 30_000)]
    public async Task ReadOutputAsync_ShellPrintfOfOneMiBThenExit_LosesNothing()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var t = TestRunner.Create();

        // printf pads "x" to 1 MiB in one go and the shell exits at once: the drain after exit must take it all.
        var job = t.Runner.Start(new JobSpec("/bin/sh", ["-c", "printf '%1048576s' x; exit 0"]));
        var status = await job.Completion.WaitAsync(ct);
        var output = await ReadAllAsync(job, new OutputReadOptions { Follow = true }, ct);

        Assert.Equal(0, status.ExitCode);
        Assert.Equal(1 << 20, output.Length);
        Assert.Equal(new string(' ', (1 << 20) - 1) + "x", Encoding.ASCII.GetString(output));
    }

    [Fact(Timeout = 60_000)]
    public async Task ReadOutputAsync_10MiBRandomFromCat_IdenticalForReadersBeforeDuringAndAfter()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var t = TestRunner.Create();
        var source = Directory.CreateTempSubdirectory("jobworker-output-source-");
        try
        {
            // The job runs as an unprivileged user: the file must be readable by anyone.
            var data = LogHarness.RandomBytes(10 << 20, seed: 42);
            var path = Path.Combine(source.FullName, "random.bin");
            await File.WriteAllBytesAsync(path, data, ct);
            File.SetUnixFileMode(source.FullName, (UnixFileMode)0b111_101_101);
            File.SetUnixFileMode(path, (UnixFileMode)0b110_100_100);
            var expected = LogHarness.Sha256(data);

            var job = t.Runner.Start(new JobSpec("/bin/cat", [path]));
            var before = OutputReader.ReadAllAsync(job.Log, new OutputReadOptions { Follow = true }, ct, keepData: false);
            await OutputReader.WaitForLengthAsync(job.Log, 1, ct);
            var during = OutputReader.ReadAllAsync(job.Log, new OutputReadOptions { Follow = true }, ct, keepData: false);
            var status = await job.Completion.WaitAsync(ct);
            var after = await OutputReader.ReadAllAsync(job.Log, new OutputReadOptions { Follow = true }, ct, keepData: false);

            Assert.Equal(0, status.ExitCode);
            Assert.Equal(data.Length, status.LogBytes);
            foreach (var result in new[] { await before, await during, after })
            {
                Assert.Equal(data.Length, result.ByteCount);
                Assert.Equal(expected, result.Sha256);
            }
        }
        finally
        {
            source.Delete(recursive: true);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_JobWritesPastTheCap_KeepsRunningAndStatusSaysTruncated()
    {
        var ct = TestContext.Current.CancellationToken;
        const int Cap = 100_000;
        const int Written = 5_000_000;
        await using var t = TestRunner.Create(options => options with { LogSizeLimitBytes = Cap });

        // Exit code 7 comes only after every write returned: the job was never blocked by the full log.
        var job = t.Start("print", Written.ToString(System.Globalization.CultureInfo.InvariantCulture), "exit", "7");
        var status = await job.Completion.WaitAsync(ct);
        var output = await ReadAllAsync(job, new OutputReadOptions { Follow = true }, ct);

        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal(7, status.ExitCode);
        Assert.True(status.LogTruncated);
        Assert.Equal(Cap, status.LogBytes);
        Assert.Equal(Written - Cap, status.LogDroppedBytes);
        Assert.Equal(Cap, new FileInfo(job.Log.Path).Length);
        Assert.Equal(TestProcessPrint(Written).AsSpan(0, Cap).ToArray(), output);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_Log_IsPrivateInTheJobsStateDirectory()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "private");
        await job.Completion.WaitAsync(ct);

        var info = new FileInfo(t.LogPath(job));
        Assert.Equal(job.Log.Path, info.FullName);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, info.UnixFileMode);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(t.JobDirectory(job.Id)));
        Assert.Equal("private\n", t.Output(job));
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_StateDirectoryFillsUp_OnlyThatLogIsSealedAndTheJobEndsNormally()
    {
        var ct = TestContext.Current.CancellationToken;
        using var small = SmallFileSystem.TryMount(512 * 1024);
        Assert.SkipWhen(small is null, "needs root to mount a 512 KiB tmpfs to fill");
        await using var t = TestRunner.Create(o => o with { StateDirectory = Path.Combine(small.Path, "state") });

        // 4 MB into a 512 KiB file system: the supervisor keeps draining (the job is never blocked), the log keeps
        // an exact prefix, and the job still gets its own exit status.
        const int Written = 4_000_000;
        var job = t.Start("print", Written.ToString(System.Globalization.CultureInfo.InvariantCulture), "exit", "3");
        var status = await job.Completion.WaitAsync(ct);
        var output = await ReadAllAsync(job, new OutputReadOptions { Follow = true }, ct);

        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal(3, status.ExitCode);
        Assert.True(status.LogTruncated);
        Assert.Equal(28, status.LogErrno); // ENOSPC
        Assert.Equal("No space left on device (ENOSPC)", status.LogError);
        Assert.InRange(status.LogBytes, 1, 512 * 1024);
        Assert.Equal(Written, status.LogBytes + status.LogDroppedBytes);
        Assert.Equal(TestProcessPrint(Written).AsSpan(0, (int)status.LogBytes).ToArray(), output);
    }

    [Fact(Timeout = 30_000)]
    public async Task ReadOutputAsync_FollowEndedJob_GetsEverythingAndEndsImmediately()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var t = TestRunner.Create();
        var job = t.Start("echo", "one", "stderr", "10", "echo", "two");
        await job.Completion.WaitAsync(ct);

        var output = await ReadAllAsync(job, new OutputReadOptions { Follow = true }, ct).WaitAsync(TimeSpan.FromSeconds(10), ct);

        // stdout and stderr share the pipe, so the interleaving is exactly the order of the writes.
        Assert.Equal("one\n" + Encoding.ASCII.GetString(TestProcessPrint(10)) + "two\n", Encoding.ASCII.GetString(output));
    }

    [Fact(Timeout = 60_000)]
    public async Task ReadOutputAsync_FollowerOfRunningJob_SeesOutputLiveAndEndsWithTheJob()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var t = TestRunner.Create();

        // The job sleeps for long after its first line: seeing the line proves it arrived live, whatever the load.
        var job = t.Start("echo", "first", "sleep", "30", "echo", "never");
        var chunks = new List<(long Offset, string Text)>();
        await foreach (var chunk in job.ReadOutputAsync(new OutputReadOptions { Follow = true }, ct))
        {
            chunks.Add((chunk.Offset, Encoding.ASCII.GetString(chunk.Data.Span)));
            Assert.False(job.Status.HasEnded);

            // The follow must end by itself once the job has ended.
            _ = job.StopAsync(TimeSpan.FromSeconds(5), ct);
        }

        var status = await job.Completion.WaitAsync(ct);
        Assert.Equal([(0L, "first\n")], chunks);
        Assert.Equal(JobState.Stopped, status.State);
        Assert.Equal(6, status.LogBytes);
    }

    private static async Task<byte[]> ReadAllAsync(Job job, OutputReadOptions options, CancellationToken cancellationToken)
    {
        var output = new MemoryStream();
        await foreach (var chunk in job.ReadOutputAsync(options, cancellationToken))
        {
            Assert.Equal(output.Length, chunk.Offset - options.FromOffset);
            output.Write(chunk.Data.Span);
        }

        return output.ToArray();
    }

    /// <summary>What <c>jobworker-testprocess print N</c> writes: 64 KiB blocks of 'a'..'z' with '\n' every 64th byte.</summary>
    private static byte[] TestProcessPrint(int count)
    {
        var bytes = new byte[count];
        for (int i = 0; i < count; i++)
        {
            int j = i % 65536;
            bytes[i] = j % 64 == 63 ? (byte)'\n' : (byte)('a' + (j % 26));
        }

        return bytes;
    }
}
