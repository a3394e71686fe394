using Grpc.Core;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>User A vs user B vs admin on every RPC, through real mutual TLS: identity comes only from the certificate.</summary>
public sealed class AuthorizationTests : IAsyncLifetime
{
    private TestServer _server = null!;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => _server = await TestServer.StartAsync(cancellationToken: Token);

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    [Fact(Timeout = 30_000)]
    public async Task OtherUsersJob_EveryRpc_NotFoundExactlyLikeAMissingId()
    {
        var alicesJob = await _server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");
        var bob = _server.Client(TestServer.Bob);
        var missing = Guid.NewGuid().ToString("D");

        foreach (var (name, call) in Calls(bob))
        {
            var denied = await Assert.ThrowsAsync<RpcException>(() => call(alicesJob.JobId));
            var absent = await Assert.ThrowsAsync<RpcException>(() => call(missing));

            Assert.Equal(StatusCode.NotFound, denied.StatusCode);
            Assert.Equal(StatusCode.NotFound, absent.StatusCode);
            // Same text apart from the id itself: nothing tells "exists but not yours" from "does not exist".
            Assert.Equal(absent.Status.Detail.Replace(missing, "ID", StringComparison.Ordinal), denied.Status.Detail.Replace(alicesJob.JobId, "ID", StringComparison.Ordinal));
            Assert.True(denied.Trailers.Count == absent.Trailers.Count, $"{name}: trailers differ");
        }

        var bobsList = (await bob.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs;
        Assert.DoesNotContain(bobsList, j => j.JobId == alicesJob.JobId);

        // Bob's attempts changed nothing: Alice's job still runs.
        var alice = _server.Client(TestServer.Alice);
        Assert.Equal(JobState.Running, (await alice.GetJobAsync(new GetJobRequest { JobId = alicesJob.JobId }, cancellationToken: Token)).Job.State);
        Assert.Contains(_server.Logs.Entries, e => e.EventId.Id == 7 && e.Message.Contains("bob (user) may not", StringComparison.Ordinal));
        await alice.StopJobAsync(new StopJobRequest { JobId = alicesJob.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 30_000)]
    public async Task OwnJob_EveryRpc_Allowed()
    {
        var alice = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "echo", "mine", "sleep", "30");

        Assert.Equal(job.JobId, (await alice.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job.JobId);
        Assert.Contains((await alice.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs, j => j.JobId == job.JobId);
        using (var stream = alice.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token))
        {
            Assert.True(await stream.ResponseStream.MoveNext(Token));
        }

        Assert.Equal(JobState.Stopped, (await alice.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job.State);
        await alice.RemoveJobAsync(new RemoveJobRequest { JobId = job.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 30_000)]
    public async Task Admin_OtherUsersJob_EveryRpcAllowed()
    {
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "echo", "alice's", "sleep", "30");
        var bobsJob = await _server.StartTestProcessAsync(TestServer.Bob, "exit", "0");
        var admin = _server.Client(TestServer.Admin);

        var seen = (await admin.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job;
        var listed = (await admin.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs;
        using (var stream = admin.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token))
        {
            Assert.True(await stream.ResponseStream.MoveNext(Token));
            Assert.Equal("alice's\n", stream.ResponseStream.Current.Chunk.Data.ToStringUtf8());
        }

        var stopped = (await admin.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job;
        await admin.RemoveJobAsync(new RemoveJobRequest { JobId = job.JobId }, cancellationToken: Token);

        Assert.Equal(TestServer.Alice, seen.Owner);
        Assert.Contains(listed, j => j.JobId == job.JobId && j.Owner == TestServer.Alice);
        Assert.Contains(listed, j => j.JobId == bobsJob.JobId && j.Owner == TestServer.Bob);
        Assert.Equal(JobState.Stopped, stopped.State);
        var gone = await Assert.ThrowsAsync<RpcException>(async () =>
            await _server.Client(TestServer.Alice).GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token));
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task ListJobs_User_SeesOnlyOwnJobs()
    {
        var alicesJob = await _server.StartTestProcessAsync(TestServer.Alice, "exit", "0");
        var bobsJob = await _server.StartTestProcessAsync(TestServer.Bob, "exit", "0");

        var alicesList = (await _server.Client(TestServer.Alice).ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs;
        var bobsList = (await _server.Client(TestServer.Bob).ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs;

        Assert.Equal([alicesJob.JobId], alicesList.Select(j => j.JobId));
        Assert.Equal([bobsJob.JobId], bobsList.Select(j => j.JobId));
    }

    [Fact(Timeout = 30_000)]
    public async Task SpoofedMetadata_ClaimingAnotherIdentity_Ignored()
    {
        var alicesJob = await _server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");
        var bob = _server.Client(TestServer.Bob);
        var spoofed = new Metadata
        {
            { "user", TestServer.Alice },
            { "x-user", TestServer.Alice },
            { "x-role", "admin" },
            { "role", "admin" },
            { "x-forwarded-client-cert", "Subject=\"CN=admin,OU=admin\"" },
            { "x-client-cert-cn", "admin" },
            { "authorization", "Bearer admin" },
        };

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await bob.GetJobAsync(new GetJobRequest { JobId = alicesJob.JobId }, spoofed, cancellationToken: Token));
        var started = (await bob.StartJobAsync(new StartJobRequest { Command = TestServer.TestProcess, Args = { "exit", "0" } }, spoofed, cancellationToken: Token)).Job;
        var listed = (await bob.ListJobsAsync(new ListJobsRequest(), spoofed, cancellationToken: Token)).Jobs;

        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Equal(TestServer.Bob, started.Owner);
        Assert.DoesNotContain(listed, j => j.JobId == alicesJob.JobId);
        await _server.Client(TestServer.Alice).StopJobAsync(new StopJobRequest { JobId = alicesJob.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 30_000)]
    public async Task RunningJobCap_PerUser_ResourceExhaustedForThatUserOnly()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["JobWorker:MaxRunningJobsPerUser"] = "2" }, Token);
        var alice = server.Client(TestServer.Alice);
        var first = await server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");
        await server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");

        var e = await Assert.ThrowsAsync<RpcException>(() => server.StartTestProcessAsync(TestServer.Alice, "sleep", "30"));
        var bobsJob = await server.StartTestProcessAsync(TestServer.Bob, "exit", "0");
        await alice.StopJobAsync(new StopJobRequest { JobId = first.JobId }, cancellationToken: Token);
        var afterStop = await server.StartTestProcessAsync(TestServer.Alice, "exit", "0");

        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("alice", e.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("MaxRunningJobsPerUser", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(TestServer.Bob, bobsJob.Owner);
        Assert.Equal(TestServer.Alice, afterStop.Owner);
    }

    private static IEnumerable<(string Name, Func<string, Task> Call)> Calls(global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient client)
    {
        yield return ("GetJob", async id => await client.GetJobAsync(new GetJobRequest { JobId = id }, cancellationToken: Token));
        yield return ("StopJob", async id => await client.StopJobAsync(new StopJobRequest { JobId = id }, cancellationToken: Token));
        yield return ("RemoveJob", async id => await client.RemoveJobAsync(new RemoveJobRequest { JobId = id }, cancellationToken: Token));
        yield return ("StreamOutput", async id =>
        {
            using var call = client.StreamOutput(new StreamOutputRequest { JobId = id, Follow = true }, cancellationToken: Token);
            await call.ResponseStream.MoveNext(Token);
        }
        );
    }
}
