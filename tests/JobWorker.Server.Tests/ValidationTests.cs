using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Health.V1;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>Invalid requests over the wire: InvalidArgument naming the field, nothing started, and the server keeps serving.</summary>
public sealed class ValidationTests : IAsyncLifetime
{
    private TestServer _server = null!;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
        => _server = await TestServer.StartAsync(new Dictionary<string, string?> { ["JobWorker:MaxArguments"] = "8" }, Token);

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    public static TheoryData<string, string> InvalidStarts => new()
    {
        { "command", """{ "command": "" }""" },
        { "args[0]", """{ "command": "/bin/true", "args": ["a\u0000b"] }""" },
        { "env[X]", """{ "command": "/bin/true", "env": { "X": "1\u00002" } }""" },
        { "args", """{ "command": "/bin/true", "args": ["1","2","3","4","5","6","7","8","9"] }""" },
        { "limits.cpu_cores", """{ "command": "/bin/true", "limits": { "cpuCores": 5000 } }""" },
        { "limits.memory_bytes", """{ "command": "/bin/true", "limits": { "memoryBytes": "-1" } }""" },
        { "limits.max_processes", """{ "command": "/bin/true", "limits": { "maxProcesses": "0" } }""" },
        { "working_directory", """{ "command": "/bin/true", "workingDirectory": "tmp" }""" },
    };

    [Theory(Timeout = 30_000)]
    [MemberData(nameof(InvalidStarts))]
    public async Task StartJob_Invalid_InvalidArgumentNamingFieldAndNothingStarted(string field, string json)
    {
        var client = _server.Client(TestServer.Alice);
        var request = JsonParser.Default.Parse<StartJobRequest>(json);

        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.StartJobAsync(request, cancellationToken: Token));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith(field + ": ", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(0, _server.Metrics.JobsStarted);
        await AssertStillServingAsync();
    }

    [Theory(Timeout = 30_000)]
    [InlineData("")]
    [InlineData("nope")]
    [InlineData("../../etc/passwd")]
    [InlineData("0f8fad5b-d9cb-469f-a165-70867728950")]
    public async Task JobIdRpcs_MalformedId_InvalidArgumentNamingJobId(string id)
    {
        var client = _server.Client(TestServer.Alice);
        var calls = new Func<Task>[]
        {
            async () => await client.GetJobAsync(new GetJobRequest { JobId = id }, cancellationToken: Token),
            async () => await client.StopJobAsync(new StopJobRequest { JobId = id }, cancellationToken: Token),
            async () => await client.RemoveJobAsync(new RemoveJobRequest { JobId = id }, cancellationToken: Token),
            async () =>
            {
                using var call = client.StreamOutput(new StreamOutputRequest { JobId = id }, cancellationToken: Token);
                await call.ResponseStream.MoveNext(Token);
            },
        };

        foreach (var call in calls)
        {
            var e = await Assert.ThrowsAsync<RpcException>(call);
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
            Assert.StartsWith("job_id: ", e.Status.Detail, StringComparison.Ordinal);
        }

        await AssertStillServingAsync();
    }

    [Fact(Timeout = 30_000)]
    public async Task StopJob_NegativeGrace_InvalidArgumentNamingGrace()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.StopJobAsync(new StopJobRequest { JobId = job.JobId, Grace = new Duration { Seconds = -1 } }, cancellationToken: Token));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith("grace: ", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(JobState.Running, (await client.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job.State);
        await client.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 30_000)]
    public async Task StreamOutput_NegativeOffset_InvalidArgumentNamingField()
    {
        var client = _server.Client(TestServer.Alice);
        var job = await _server.StartTestProcessAsync(TestServer.Alice, "exit", "0");

        using var call = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId, FromOffset = -5 }, cancellationToken: Token);
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(Token));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith("from_offset: ", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task StartJob_UnknownField_InvalidArgumentNamingIt()
    {
        var client = _server.Client(TestServer.Alice);
        // A newer client's field: appended to a valid request, kept by protobuf as unknown and sent as-is.
        var bytes = new StartJobRequest { Command = TestServer.TestProcess }.ToByteArray()
            .Concat(new byte[] { (15 << 3) | 0, 1 }).ToArray();
        var request = StartJobRequest.Parser.ParseFrom(bytes);

        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.StartJobAsync(request, cancellationToken: Token));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("unknown field number 15", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(0, _server.Metrics.JobsStarted);
    }

    [Fact(Timeout = 30_000)]
    public async Task ListJobs_UnknownField_InvalidArgumentNamingIt()
    {
        // ListJobs is bound by hand (ListJobsEndpoint); the interceptor's checks apply to it as to the others.
        var client = _server.Client(TestServer.Alice);
        var bytes = new ListJobsRequest { PageSize = 5 }.ToByteArray().Concat(new byte[] { (15 << 3) | 0, 1 }).ToArray();

        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.ListJobsAsync(ListJobsRequest.Parser.ParseFrom(bytes), cancellationToken: Token));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("unknown field number 15", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task StartJob_UnavailableController_FailedPreconditionNamingController()
    {
        Assert.SkipWhen(File.ReadAllText(Path.Combine(_server.CgroupRoot, "cgroup.controllers")).Contains("memory", StringComparison.Ordinal),
            "this host offers the memory controller, so a memory limit is not refused here");
        var client = _server.Client(TestServer.Alice);

        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.StartJobAsync(
            new StartJobRequest { Command = TestServer.TestProcess, Limits = new() { MemoryBytes = 64 << 20 } }, cancellationToken: Token));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("memory", e.Status.Detail, StringComparison.Ordinal);
        await AssertStillServingAsync();
    }

    private async Task AssertStillServingAsync()
    {
        // Another client on a fresh connection is served normally.
        var health = new Health.HealthClient(_server.Channel(_server.ClientCertificate(TestServer.Bob)));
        var response = await health.CheckAsync(new HealthCheckRequest(), cancellationToken: Token);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
        var bobsJobs = await _server.Client(TestServer.Bob).ListJobsAsync(new ListJobsRequest(), cancellationToken: Token);
        Assert.Empty(bobsJobs.Jobs);
    }
}
