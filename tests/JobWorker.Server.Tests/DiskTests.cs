using System.Text;
using System.Text.RegularExpressions;
using Grpc.Core;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>
/// The log file system filling up, on a real small tmpfs as the state directory: only the job writing at that
/// moment loses output (its log is sealed and says why), and new jobs log again once space is back; below the
/// free-space watermark new jobs are refused.
/// </summary>
public sealed class DiskTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 90_000)]
    public async Task DiskFull_OnlyTheWritingJobIsTruncatedWithEnospc_OthersAndNewJobsLogOnceSpaceIsFreed()
    {
        await using var tmpfs = await TmpfsMount.CreateAsync(1 << 20);
        var go = Path.Combine(Path.GetTempPath(), "jobworker-go-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(go);
        File.SetUnixFileMode(go, (UnixFileMode)0b111_101_101); // jobs run as nobody
        try
        {
            await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
            {
                ["JobWorker:StateDirectory"] = Path.Combine(tmpfs.Path, "state"),
                ["JobWorker:Disk:MinFreeBytes"] = "0",
                ["JobWorker:Disk:MinFreePercent"] = "0",
            }, Token);
            var alice = server.Client(TestServer.Alice);
            var quiet = (await alice.StartJobAsync(
                new StartJobRequest { Command = "/bin/sh", Args = { "-c", $"echo before; while [ ! -e {go}/now ]; do sleep 0.05; done; echo after" } },
                cancellationToken: Token)).Job;
            await WaitForLogAsync(alice, quiet.JobId, 7);

            // Four times the file system: the writer fills it and loses the rest of its output.
            var writer = await server.StartTestProcessAsync(TestServer.Alice, "print", "4000000");
            await JobRpcTests.WaitForEndAsync(alice, writer.JobId);
            var truncated = (await alice.GetJobAsync(new GetJobRequest { JobId = writer.JobId }, cancellationToken: Token)).Job;
            var written = await ReadAllAsync(alice, writer.JobId);

            await alice.RemoveJobAsync(new RemoveJobRequest { JobId = writer.JobId }, cancellationToken: Token);
            await File.WriteAllTextAsync(Path.Combine(go, "now"), "", Token);
            await JobRpcTests.WaitForEndAsync(alice, quiet.JobId);
            var quietEnded = (await alice.GetJobAsync(new GetJobRequest { JobId = quiet.JobId }, cancellationToken: Token)).Job;
            var fresh = await server.StartTestProcessAsync(TestServer.Alice, "print", "100000");
            await JobRpcTests.WaitForEndAsync(alice, fresh.JobId);
            var freshEnded = (await alice.GetJobAsync(new GetJobRequest { JobId = fresh.JobId }, cancellationToken: Token)).Job;

            Assert.Equal(JobState.Exited, truncated.State);
            Assert.True(truncated.LogTruncated);
            Assert.Equal("No space left on device (ENOSPC)", truncated.LogError);
            Assert.InRange(truncated.LogBytes, 1, (1 << 20) - 1);
            Assert.Equal(4_000_000, truncated.LogBytes + truncated.LogDroppedBytes);
            Assert.Equal(JobRpcTests.ExpectedPrint((int)truncated.LogBytes), written); // an exact prefix
            Assert.Equal(JobState.Exited, quietEnded.State);
            Assert.Equal("before\nafter\n", Encoding.ASCII.GetString(await ReadAllAsync(alice, quiet.JobId)));
            Assert.False(quietEnded.LogTruncated);
            Assert.Equal("", quietEnded.LogError);
            Assert.Equal(100_000, freshEnded.LogBytes);
            Assert.False(freshEnded.LogTruncated);
            Assert.Equal(JobRpcTests.ExpectedPrint(100_000), await ReadAllAsync(alice, fresh.JobId));
        }
        finally
        {
            Directory.Delete(go, recursive: true);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task StartJob_LogFileSystemBelowWatermark_ResourceExhaustedNamingItUntilSpaceIsFreed()
    {
        await using var tmpfs = await TmpfsMount.CreateAsync(4 << 20);
        var state = Path.Combine(tmpfs.Path, "state");
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:StateDirectory"] = state,
            ["JobWorker:Disk:MinFreeBytes"] = "2097152",
            ["JobWorker:Disk:MinFreePercent"] = "0",
        }, Token);
        var alice = server.Client(TestServer.Alice);
        var before = await server.StartTestProcessAsync(TestServer.Alice, "echo", "fine");
        var filler = Path.Combine(tmpfs.Path, "filler");
        await File.WriteAllBytesAsync(filler, new byte[3 << 20], Token);

        var refused = await Assert.ThrowsAsync<RpcException>(() => server.StartTestProcessAsync(TestServer.Alice, "echo", "refused"));
        var stillServed = (await alice.GetJobAsync(new GetJobRequest { JobId = before.JobId }, cancellationToken: Token)).Job;
        File.Delete(filler);
        var after = await server.StartTestProcessAsync(TestServer.Alice, "echo", "again");
        await JobRpcTests.WaitForEndAsync(alice, after.JobId);

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Matches(
            WatermarkMessage(Regex.Escape(tmpfs.Path), Regex.Escape(state)),
            refused.Status.Detail);
        Assert.Equal(before.JobId, stillServed.JobId);
        Assert.Equal("again\n", Encoding.ASCII.GetString(await ReadAllAsync(alice, after.JobId)));
    }

    private static Regex WatermarkMessage(string mount, string state) => new(
        $@"^the log file system is almost full: {mount} \(tmpfs, holding the state directory {state}\) has \d+ bytes \(\d+(\.\d)? KiB\) free \(\d+(\.\d+)? % of 4194304 bytes \(4 MiB\)\), below the watermark of 2097152 bytes \(2 MiB\) \(JobWorker:Disk:MinFreeBytes\); new jobs are refused until space is freed \(remove ended jobs: worker rm <id>\)$");

    private static async Task WaitForLogAsync(global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient client, string jobId, long bytes)
    {
        while ((await client.GetJobAsync(new GetJobRequest { JobId = jobId }, cancellationToken: Token)).Job.LogBytes < bytes)
        {
            await Task.Delay(20, Token);
        }
    }

    private static async Task<byte[]> ReadAllAsync(global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient client, string jobId)
    {
        using var call = client.StreamOutput(new StreamOutputRequest { JobId = jobId }, cancellationToken: Token);
        var bytes = new List<byte>();
        while (await call.ResponseStream.MoveNext(Token))
        {
            if (call.ResponseStream.Current.Chunk is { } chunk)
            {
                bytes.AddRange(chunk.Data.Span);
            }
        }

        return [.. bytes];
    }
}
