using Grpc.Core;
using JobWorker.Core.Jobs;
using JobWorker.Pki;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>
/// StartJob's request_id (the idempotency key) and its cancellation up to the spawn, against a real server
/// starting real jobs: a repeated start runs nothing again, per user, within the remembered window and count.
/// </summary>
public sealed class StartJobIdempotencyTests : IAsyncLifetime
{
    private TestServer _server = null!;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => _server = await TestServer.StartAsync(
        new Dictionary<string, string?> { ["JobWorker:MaxStartRequestIdsPerUser"] = "3" }, Token);

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    [Fact(Timeout = 30_000)]
    public async Task StartJob_SameRequestIdTwice_OneJobAndTheSameJobReturned()
    {
        var client = _server.Client(TestServer.Alice);

        var first = await client.StartJobAsync(Request("req-1", "sleep", "30"), cancellationToken: Token);
        var second = await client.StartJobAsync(Request("req-1", "sleep", "30"), cancellationToken: Token);

        Assert.Equal(first.Job.JobId, second.Job.JobId);
        Assert.Equal(first.Job.Pid, second.Job.Pid);
        Assert.Single(_server.Host.Runner.Jobs);
        Assert.Equal(1, _server.Host.RunningJobs(TestServer.Alice));
        Assert.Contains(_server.Logs.Entries, e => e.Message.Contains("repeated start request req-1", StringComparison.Ordinal));
    }

    [Fact(Timeout = 30_000)]
    public async Task StartJob_ConcurrentSameRequestId_OneJob()
    {
        // Separate connections, released together: the duplicates race the first start on the server.
        var clients = Enumerable.Range(0, 16).Select(_ => _server.Client(TestServer.Alice)).ToList();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = clients.Select(async client =>
        {
            await gate.Task;
            return (await client.StartJobAsync(Request("same-id", "sleep", "30"), cancellationToken: Token)).Job.JobId;
        }).ToList();

        gate.SetResult();
        var ids = await Task.WhenAll(calls);

        Assert.Single(ids.Distinct());
        Assert.Single(_server.Host.Runner.Jobs);
        Assert.Equal(1, _server.Host.RunningJobs(TestServer.Alice));
    }

    [Fact(Timeout = 30_000)]
    public async Task StartJob_SameRequestIdDifferentUsers_TwoJobs()
    {
        var alices = await _server.Client(TestServer.Alice).StartJobAsync(Request("shared", "sleep", "30"), cancellationToken: Token);
        var bobs = await _server.Client(TestServer.Bob).StartJobAsync(Request("shared", "sleep", "30"), cancellationToken: Token);

        Assert.NotEqual(alices.Job.JobId, bobs.Job.JobId);
        Assert.Equal(TestServer.Alice, alices.Job.Owner);
        Assert.Equal(TestServer.Bob, bobs.Job.Owner);
        Assert.Equal(2, _server.Host.Runner.Jobs.Count);
    }

    [Fact(Timeout = 30_000)]
    public async Task StartJob_SameRequestIdDifferentSpec_AlreadyExistsNamingTheJob()
    {
        var client = _server.Client(TestServer.Alice);
        var first = await client.StartJobAsync(Request("reused", "sleep", "30"), cancellationToken: Token);

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.StartJobAsync(Request("reused", "sleep", "31"), cancellationToken: Token));

        Assert.Equal(StatusCode.AlreadyExists, e.StatusCode);
        Assert.Contains("request_id 'reused' was already used to start a different job", e.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(first.Job.JobId, e.Status.Detail, StringComparison.Ordinal);
        Assert.Single(_server.Host.Runner.Jobs);
    }

    [Fact(Timeout = 30_000)]
    public async Task StartJob_SameSpecWithEnvironmentInAnotherOrder_IsTheSameRequest()
    {
        var client = _server.Client(TestServer.Alice);
        var first = Request("env-order", "sleep", "30");
        first.Env.Add("A", "1");
        first.Env.Add("B", "2");
        var second = Request("env-order", "sleep", "30");
        second.Env.Add("B", "2");
        second.Env.Add("A", "1");

        var a = await client.StartJobAsync(first, cancellationToken: Token);
        var b = await client.StartJobAsync(second, cancellationToken: Token);

        Assert.Equal(a.Job.JobId, b.Job.JobId);
    }

    [Theory(Timeout = 30_000)]
    [InlineData("has space")]
    [InlineData("slash/inside")]
    [InlineData("é")]
    [InlineData("nul\0")]
    [InlineData("x129")]
    public async Task StartJob_InvalidRequestId_InvalidArgumentAndNothingStarted(string requestId)
    {
        if (requestId == "x129")
        {
            requestId = new string('x', 129);
        }

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await _server.Client(TestServer.Alice).StartJobAsync(Request(requestId, "exit", "0"), cancellationToken: Token));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith("request_id: ", e.Status.Detail, StringComparison.Ordinal);
        Assert.Empty(_server.Host.Runner.Jobs);
    }

    [Fact(Timeout = 30_000)]
    public async Task StartJob_FailedStart_ForgetsTheRequestId()
    {
        var client = _server.Client(TestServer.Alice);
        var failed = new StartJobRequest { Command = "/nonexistent/program", RequestId = "retry-me" };

        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.StartJobAsync(failed, cancellationToken: Token));
        var fixedUp = await client.StartJobAsync(Request("retry-me", "exit", "0"), cancellationToken: Token);

        // Remembered, the id would now answer AlreadyExists (another spec): it started a job instead.
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Equal(Guid.Parse(fixedUp.Job.JobId), Assert.Single(_server.Host.Runner.Jobs).Id);
    }

    [Fact(Timeout = 30_000)]
    public async Task StartJob_MoreRequestIdsThanRemembered_OldestForgottenFirst()
    {
        var client = _server.Client(TestServer.Alice);
        var ids = new List<string>();
        foreach (var requestId in new[] { "r1", "r2", "r3", "r4" })
        {
            ids.Add((await client.StartJobAsync(Request(requestId, "exit", "0"), cancellationToken: Token)).Job.JobId);
        }

        // At most 3 are remembered: r1 is forgotten and starts a new job, r4 is still known.
        var r1Again = await client.StartJobAsync(Request("r1", "exit", "0"), cancellationToken: Token);
        var r4Again = await client.StartJobAsync(Request("r4", "exit", "0"), cancellationToken: Token);

        Assert.DoesNotContain(r1Again.Job.JobId, ids);
        Assert.Equal(ids[3], r4Again.Job.JobId);
        Assert.Equal(5, _server.Host.Runner.Jobs.Count);
    }

    [Fact(Timeout = 30_000)]
    public async Task StartJob_RemovedJobsRequestIdRepeated_NotFoundSaysItWasRemoved()
    {
        var client = _server.Client(TestServer.Alice);
        var started = await client.StartJobAsync(Request("gone", "exit", "0"), cancellationToken: Token);
        await foreach (var _ in client.StreamOutput(new StreamOutputRequest { JobId = started.Job.JobId, Follow = true }, cancellationToken: Token).ResponseStream.ReadAllAsync(Token))
        {
        }

        await client.RemoveJobAsync(new RemoveJobRequest { JobId = started.Job.JobId }, cancellationToken: Token);
        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.StartJobAsync(Request("gone", "exit", "0"), cancellationToken: Token));

        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Contains("has since been removed", e.Status.Detail, StringComparison.Ordinal);
        Assert.Empty(_server.Host.Runner.Jobs);
    }

    [Fact(Timeout = 30_000)]
    public async Task StartJob_RequestIdOlderThanTheRetention_StartsAgain()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["JobWorker:StartRequestIdRetention"] = "00:00:00.500" }, Token);
        var client = server.Client(TestServer.Alice);

        var first = await client.StartJobAsync(Request("short-lived", "exit", "0"), cancellationToken: Token);
        await Task.Delay(TimeSpan.FromSeconds(1), Token);
        var second = await client.StartJobAsync(Request("short-lived", "exit", "0"), cancellationToken: Token);

        Assert.NotEqual(first.Job.JobId, second.Job.JobId);
    }

    [Fact(Timeout = 30_000)]
    public void HostStart_CancelledBeforeTheSpawn_StartsNothingAndReleasesTheCap()
    {
        var spec = new JobSpec(TestServer.TestProcess, ["exit", "0"]) { Owner = TestServer.Alice };

        Assert.Throws<OperationCanceledException>(() => _server.Host.Start(spec, new ClientIdentity(TestServer.Alice, Roles.User), cancellationToken: new CancellationToken(canceled: true)));

        Assert.Empty(_server.Host.Runner.Jobs);
        Assert.Equal(0, _server.Host.RunningJobs(TestServer.Alice));
    }

    private static StartJobRequest Request(string requestId, params string[] steps)
    {
        var request = new StartJobRequest { Command = TestServer.TestProcess, RequestId = requestId };
        request.Args.AddRange(steps);
        return request;
    }
}
