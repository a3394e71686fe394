using Grpc.Core;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>
/// Per-user quotas on running jobs, retained ended jobs and log bytes, looked up per user, role and default, through
/// a real server with real certificates; and retention, which removes ended jobs with their logs.
/// </summary>
public sealed class QuotaTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 60_000)]
    public async Task StartJob_OverRetainedJobQuota_ResourceExhaustedNamingQuotaUseAndRemedyUntilOneIsRemoved()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Quotas:Default:MaxRetainedJobs"] = "2",
            ["JobWorker:Quotas:Users:bob:MaxRetainedJobs"] = "3",
        }, Token);
        var alice = server.Client(TestServer.Alice);
        var bob = server.Client(TestServer.Bob);
        var first = await EndedJobAsync(server, TestServer.Alice);
        await EndedJobAsync(server, TestServer.Alice);
        for (var i = 0; i < 3; i++)
        {
            await EndedJobAsync(server, TestServer.Bob);
        }

        var aliceRefused = await Assert.ThrowsAsync<RpcException>(() => server.StartTestProcessAsync(TestServer.Alice, "exit", "0"));
        var bobRefused = await Assert.ThrowsAsync<RpcException>(() => server.StartTestProcessAsync(TestServer.Bob, "exit", "0"));
        await alice.RemoveJobAsync(new RemoveJobRequest { JobId = first.JobId }, cancellationToken: Token);
        var afterRemove = await server.StartTestProcessAsync(TestServer.Alice, "exit", "0");

        Assert.Equal(StatusCode.ResourceExhausted, aliceRefused.StatusCode);
        Assert.Equal(
            "quota exceeded: user 'alice' keeps 2 ended jobs and may keep 2 (JobWorker:Quotas:Default:MaxRetainedJobs); remove ended jobs you no longer need (worker rm <id>); ended jobs are removed 7.00:00:00 after they end (JobWorker:Retention:EndedJobs)",
            aliceRefused.Status.Detail);
        Assert.Equal(StatusCode.ResourceExhausted, bobRefused.StatusCode);
        Assert.StartsWith("quota exceeded: user 'bob' keeps 3 ended jobs and may keep 3 (JobWorker:Quotas:Users:bob:MaxRetainedJobs);", bobRefused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(TestServer.Alice, afterRemove.Owner);
        Assert.Equal(3, (await bob.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs.Count);
    }

    [Fact(Timeout = 60_000)]
    public async Task StartJob_OverLogByteQuota_ResourceExhaustedWithTheBytesHeldUntilTheLogIsRemoved()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Quotas:Default:MaxLogBytes"] = "4096",
            ["JobWorker:Retention:EndedJobs"] = "01:00:00",
        }, Token);
        var alice = server.Client(TestServer.Alice);
        var small = await EndedJobAsync(server, TestServer.Alice, "print", "1000");
        var large = await EndedJobAsync(server, TestServer.Alice, "print", "5000");

        var refused = await Assert.ThrowsAsync<RpcException>(() => server.StartTestProcessAsync(TestServer.Alice, "exit", "0"));
        var bobsJob = await server.StartTestProcessAsync(TestServer.Bob, "exit", "0");
        await alice.RemoveJobAsync(new RemoveJobRequest { JobId = large.JobId }, cancellationToken: Token);
        var afterRemove = await server.StartTestProcessAsync(TestServer.Alice, "exit", "0");

        Assert.Equal(1000, small.LogBytes);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Equal(
            "quota exceeded: the logs of user 'alice' hold 6000 bytes (5.9 KiB) and may hold 4096 bytes (4 KiB) (JobWorker:Quotas:Default:MaxLogBytes); remove ended jobs you no longer need (worker rm <id>); ended jobs are removed 01:00:00 after they end (JobWorker:Retention:EndedJobs)",
            refused.Status.Detail);
        Assert.Equal(TestServer.Bob, bobsJob.Owner);
        Assert.Equal(TestServer.Alice, afterRemove.Owner);
    }

    [Fact(Timeout = 60_000)]
    public async Task StartJob_RemoveOldestOverQuota_OldestEndedJobsMakeRoomRunningAndOtherUsersJobsStay()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Quotas:Default:MaxRetainedJobs"] = "2",
            ["JobWorker:Retention:RemoveOldestOverQuota"] = "true",
        }, Token);
        var alice = server.Client(TestServer.Alice);
        var bobs = await EndedJobAsync(server, TestServer.Bob);
        var running = await server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");
        var oldest = await EndedJobAsync(server, TestServer.Alice);
        var second = await EndedJobAsync(server, TestServer.Alice);

        // Alice keeps 2 ended jobs, her quota: the start removes the oldest ended one instead of being refused.
        var third = await EndedJobAsync(server, TestServer.Alice);
        var fourth = await server.StartTestProcessAsync(TestServer.Alice, "exit", "0");

        var listed = (await alice.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs.Select(j => j.JobId).ToList();
        Assert.Equal([running.JobId, third.JobId, fourth.JobId], listed);
        foreach (var removed in new[] { oldest, second })
        {
            var e = await Assert.ThrowsAsync<RpcException>(async () => await alice.GetJobAsync(new GetJobRequest { JobId = removed.JobId }, cancellationToken: Token));
            Assert.Equal(StatusCode.NotFound, e.StatusCode);
            Assert.False(Directory.Exists(Path.Combine(server.Directory, "logs", "jobs", Guid.Parse(removed.JobId).ToString("N"))), "the removed job's directory (and log) stays");
            Assert.Contains(server.Logs.Entries, l => l.EventId.Id == 132 && l.Message.StartsWith($"Removed job {Guid.Parse(removed.JobId)} of alice, the oldest of its ended jobs", StringComparison.Ordinal));
        }

        Assert.Equal(JobState.Running, (await alice.GetJobAsync(new GetJobRequest { JobId = running.JobId }, cancellationToken: Token)).Job.State);
        Assert.Equal(bobs.JobId, Assert.Single((await server.Client(TestServer.Bob).ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs).JobId);
        await alice.StopJobAsync(new StopJobRequest { JobId = running.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task StartJob_RemoveOldestOverQuota_LogBytesMakeRoomButRunningLogsStillRefuse()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Quotas:Default:MaxLogBytes"] = "4096",
            ["JobWorker:Retention:RemoveOldestOverQuota"] = "true",
        }, Token);
        var alice = server.Client(TestServer.Alice);
        var first = await EndedJobAsync(server, TestServer.Alice, "print", "3000");
        var second = await EndedJobAsync(server, TestServer.Alice, "print", "3000");

        // 6000 bytes in two ended logs, over the quota of 4096: the oldest goes, 3000 stay, and the start goes through.
        var started = await server.StartTestProcessAsync(TestServer.Alice, "print", "5000", "sleep", "30");
        await WaitForLogAsync(alice, started.JobId, 5000);
        var listed = (await alice.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs.Select(j => j.JobId).ToList();

        // Now the running job's own log holds more than the quota: removing the ended one could not make room, so it
        // stays and the start is refused as without the setting (running jobs are never removed).
        var refused = await Assert.ThrowsAsync<RpcException>(() => server.StartTestProcessAsync(TestServer.Alice, "exit", "0"));

        Assert.Equal([second.JobId, started.JobId], listed);
        Assert.DoesNotContain(first.JobId, listed);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.StartsWith("quota exceeded: the logs of user 'alice' hold 8000 bytes", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Equal([second.JobId, started.JobId], (await alice.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs.Select(j => j.JobId));
        await alice.StopJobAsync(new StopJobRequest { JobId = started.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task StartJob_RunningLogsCountTowardsTheLogByteQuota()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Quotas:Default:MaxLogBytes"] = "4096",
            ["JobWorker:Retention:EndedJobs"] = "01:00:00",
        }, Token);
        var writer = await server.StartTestProcessAsync(TestServer.Alice, "print", "5000", "sleep", "30");
        await WaitForLogAsync(server.Client(TestServer.Alice), writer.JobId, 5000);

        var refused = await Assert.ThrowsAsync<RpcException>(() => server.StartTestProcessAsync(TestServer.Alice, "exit", "0"));

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.StartsWith("quota exceeded: the logs of user 'alice' hold 5000 bytes (4.9 KiB) and may hold 4096 bytes (4 KiB) (JobWorker:Quotas:Default:MaxLogBytes);", refused.Status.Detail, StringComparison.Ordinal);
        await server.Client(TestServer.Alice).StopJobAsync(new StopJobRequest { JobId = writer.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task StartJob_OverRunningQuotaOfTheRole_ResourceExhaustedNamingTheRoleSetting()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Quotas:Roles:admin:MaxRunningJobs"] = "1",
        }, Token);
        var admin = server.Client(TestServer.Admin);
        var running = await server.StartTestProcessAsync(TestServer.Admin, "sleep", "30");

        var refused = await Assert.ThrowsAsync<RpcException>(() => server.StartTestProcessAsync(TestServer.Admin, "sleep", "30"));
        var alicesSecond = await StartTwoAsync(server, TestServer.Alice);

        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Equal(
            "quota exceeded: user 'admin' has 1 running jobs and may have 1 (JobWorker:Quotas:Roles:admin:MaxRunningJobs); stop one (worker stop <id>) or wait for one to end",
            refused.Status.Detail);
        Assert.Equal(JobState.Running, alicesSecond.State);
        await admin.StopJobAsync(new StopJobRequest { JobId = running.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Retention_EndedJobExpires_RemovedWithItsLogAndUnlistedWhileRunningJobStays()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Retention:EndedJobs"] = "00:00:01",
            ["JobWorker:Retention:CheckInterval"] = "00:00:00.100",
            ["JobWorker:Quotas:Default:MaxRetainedJobs"] = "1",
        }, Token);
        var alice = server.Client(TestServer.Alice);
        var running = await server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");
        var ended = await EndedJobAsync(server, TestServer.Alice, "echo", "bye");
        var directory = Path.Combine(server.Directory, "logs", "jobs", Guid.Parse(ended.JobId).ToString("N"));
        Assert.True(File.Exists(Path.Combine(directory, "output.log")));

        var gone = await WaitUntilGoneAsync(alice, ended.JobId, TimeSpan.FromSeconds(20));
        var startedAfterExpiry = await server.StartTestProcessAsync(TestServer.Alice, "exit", "0");

        Assert.True(gone, "the ended job was not removed within 20 s of a 1 s retention");
        Assert.False(Directory.Exists(directory), $"{directory} is still there");
        var listed = (await alice.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs.Select(j => j.JobId).ToList();
        Assert.DoesNotContain(ended.JobId, listed);
        Assert.Contains(running.JobId, listed);
        Assert.Equal(JobState.Running, (await alice.GetJobAsync(new GetJobRequest { JobId = running.JobId }, cancellationToken: Token)).Job.State);
        Assert.Equal(TestServer.Alice, startedAfterExpiry.Owner);
        Assert.Contains(server.Logs.Entries, e => e.Message.Contains($"Removed job {Guid.Parse(ended.JobId)}", StringComparison.Ordinal));
        await alice.StopJobAsync(new StopJobRequest { JobId = running.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Retention_JobExpiresWhileItsOutputIsBeingRead_RemovedAndTheReaderToldSo()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Retention:EndedJobs"] = "00:00:03",
            ["JobWorker:Retention:CheckInterval"] = "00:00:00.100",
        }, Token);
        var alice = server.Client(TestServer.Alice);
        var job = await server.StartTestProcessAsync(TestServer.Alice, "print", "16000000");
        while ((await alice.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job.State == JobState.Running)
        {
            await Task.Delay(20, Token);
        }

        // A reader that takes one chunk and then stops reading: the server's writer waits on HTTP/2 flow control.
        using var call = alice.StreamOutput(new StreamOutputRequest { JobId = job.JobId }, cancellationToken: Token);
        Assert.True(await call.ResponseStream.MoveNext(Token));
        var gone = await WaitUntilGoneAsync(alice, job.JobId, TimeSpan.FromSeconds(20));
        long received = 0;
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(Token))
            {
                received += call.ResponseStream.Current.Chunk?.Data.Length ?? 0;
            }
        });

        Assert.True(gone, "a job whose output is being read must still be removed when it expires");
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Equal($"job {job.JobId} was removed while its output was being read", e.Status.Detail);
        Assert.True(received < 16_000_000, $"the reader got {received} bytes: the whole log, so the removal did not cut it");
    }

    [Fact(Timeout = 120_000)]
    public async Task Kill9_ExpiredJobFoundAtStartUp_RemovedBeforeListeningWhileRunningJobAndOthersStay()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        var server = env.Start(extraArgs: ["--JobWorker:Retention:EndedJobs=01:00:00"]);
        var client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        var expired = (await client.StartJobAsync(Shell("echo bye; exit 3"), cancellationToken: Token)).Job;
        await JobRpcTests.WaitForEndAsync(client, expired.JobId);
        var running = (await client.StartJobAsync(Shell("exec sleep 60"), cancellationToken: Token)).Job;
        server.Kill(); // SIGKILL
        await server.WaitForExitAsync(Token);

        // What a removal cut short by a crash leaves: the job's directory renamed away, half emptied.
        var jobs = Path.Combine(env.Directory, "state", "jobs");
        var interrupted = Path.Combine(jobs, $".{Guid.NewGuid():N}-{Guid.NewGuid():N}.deleting");
        Directory.CreateDirectory(interrupted);
        await File.WriteAllTextAsync(Path.Combine(interrupted, "output.log"), "half removed", Token);
        await Task.Delay(TimeSpan.FromSeconds(1.2), Token);

        // Only the sweep at start-up can remove it: the next check is an hour away.
        server = env.Start(extraArgs: ["--JobWorker:Retention:EndedJobs=00:00:01", "--JobWorker:Retention:CheckInterval=01:00:00"]);
        client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.GetJobAsync(new GetJobRequest { JobId = expired.JobId }, cancellationToken: Token));
        var list = (await client.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs;

        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Equal([running.JobId], list.Select(j => j.JobId));
        Assert.Equal(JobState.Running, list[0].State);
        Assert.True(Directory.Exists($"/proc/{running.Pid}"), "a running job must never be removed");
        Assert.False(Directory.Exists(Path.Combine(jobs, Guid.Parse(expired.JobId).ToString("N"))), "the expired job's directory (record and log) must be gone");
        Assert.False(Directory.Exists(interrupted), "an interrupted removal must be finished at start-up");
        Assert.Equal([Guid.Parse(running.JobId).ToString("N")], Directory.GetFileSystemEntries(jobs).Select(Path.GetFileName));
        Assert.Contains($"Removed job {Guid.Parse(expired.JobId)} of alice", env.Output, StringComparison.Ordinal);
        await client.StopJobAsync(new StopJobRequest { JobId = running.JobId }, cancellationToken: Token);
        server.Kill();
        await server.WaitForExitAsync(Token);
    }

    [Fact(Timeout = 120_000)]
    public async Task Kill9_JobsFromBeforeTheRestart_CountAgainstTheQuotasOfTheNextServer()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        var server = env.Start();
        var client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        var ended = (await client.StartJobAsync(Shell("echo bye"), cancellationToken: Token)).Job;
        await JobRpcTests.WaitForEndAsync(client, ended.JobId);
        var running = (await client.StartJobAsync(Shell("exec sleep 60"), cancellationToken: Token)).Job;
        server.Kill(); // SIGKILL
        await server.WaitForExitAsync(Token);

        server = env.Start(extraArgs: ["--max-running-jobs", "1", "--JobWorker:Quotas:Default:MaxRetainedJobs=2", "--JobWorker:Retention:EndedJobs="]);
        client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        var runningRefused = await Assert.ThrowsAsync<RpcException>(async () => await client.StartJobAsync(Shell("exit 0"), cancellationToken: Token));
        await client.StopJobAsync(new StopJobRequest { JobId = running.JobId }, cancellationToken: Token);
        var retainedRefused = await Assert.ThrowsAsync<RpcException>(async () => await client.StartJobAsync(Shell("exit 0"), cancellationToken: Token));

        Assert.Equal(
            "quota exceeded: user 'alice' has 1 running jobs and may have 1 (JobWorker:MaxRunningJobsPerUser); stop one (worker stop <id>) or wait for one to end",
            runningRefused.Status.Detail);
        Assert.Equal(
            "quota exceeded: user 'alice' keeps 2 ended jobs and may keep 2 (JobWorker:Quotas:Default:MaxRetainedJobs); remove ended jobs you no longer need (worker rm <id>)",
            retainedRefused.Status.Detail);
        server.Kill();
        await server.WaitForExitAsync(Token);
    }

    private static StartJobRequest Shell(string script) => new() { Command = "/bin/sh", Args = { "-c", script } };

    private static async Task<JobStatus> StartTwoAsync(TestServer server, string user)
    {
        var first = await server.StartTestProcessAsync(user, "sleep", "30");
        var second = await server.StartTestProcessAsync(user, "sleep", "30");
        await server.Client(user).StopJobAsync(new StopJobRequest { JobId = first.JobId }, cancellationToken: Token);
        await server.Client(user).StopJobAsync(new StopJobRequest { JobId = second.JobId }, cancellationToken: Token);
        return second;
    }

    private static async Task<JobStatus> EndedJobAsync(TestServer server, string user, params string[] steps)
    {
        var job = await server.StartTestProcessAsync(user, steps.Length == 0 ? ["exit", "0"] : steps);
        var client = server.Client(user);
        await JobRpcTests.WaitForEndAsync(client, job.JobId);
        return (await client.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job;
    }

    private static async Task WaitForLogAsync(global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient client, string jobId, long bytes)
    {
        while ((await client.GetJobAsync(new GetJobRequest { JobId = jobId }, cancellationToken: Token)).Job.LogBytes < bytes)
        {
            await Task.Delay(20, Token);
        }
    }

    private static async Task<bool> WaitUntilGoneAsync(global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient client, string jobId, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                await client.GetJobAsync(new GetJobRequest { JobId = jobId }, cancellationToken: Token);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
                return true;
            }

            await Task.Delay(50, Token);
        }

        return false;
    }
}
