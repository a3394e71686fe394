using Grpc.Core;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>ListJobs at scale: pages, filters, the owner rule and cut args, against a real server.</summary>
public sealed class ListJobsTests : IAsyncLifetime
{
    private TestServer _server = null!;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => _server = await TestServer.StartAsync(cancellationToken: Token);

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    [Fact(Timeout = 120_000)]
    public async Task ListJobs_PagesWhileJobsStartAndAreRemoved_EveryLastingJobExactlyOnce()
    {
        var client = _server.Client(TestServer.Alice);
        var lasting = new List<string>();
        var removable = new List<string>();
        for (var i = 0; i < 24; i++)
        {
            var job = await _server.StartTestProcessAsync(TestServer.Alice, "exit", "0");
            (i % 2 == 0 ? lasting : removable).Add(job.JobId);
        }

        foreach (var id in lasting.Concat(removable))
        {
            await WaitForEndAsync(client, id);
        }

        // Starts and removes run while the pages are read: a job that exists throughout must appear exactly once.
        using var churnStop = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var churn = Task.Run(async () =>
        {
            var started = new List<string>();
            foreach (var id in removable)
            {
                await client.RemoveJobAsync(new RemoveJobRequest { JobId = id }, cancellationToken: churnStop.Token);
                started.Add((await _server.StartTestProcessAsync(TestServer.Alice, "exit", "0")).JobId);
            }

            return started;
        }, churnStop.Token);

        var seen = new List<string>();
        var token = "";
        var pages = 0;
        do
        {
            var page = await client.ListJobsAsync(new ListJobsRequest { PageSize = 3, PageToken = token }, cancellationToken: Token);
            Assert.True(page.Jobs.Count <= 3);
            seen.AddRange(page.Jobs.Select(j => j.JobId));
            token = page.NextPageToken;
            pages++;
            await Task.Delay(20, Token);
        }
        while (token.Length > 0);
        var startedDuring = await churn;

        Assert.Equal(seen.Count, seen.Distinct().Count());
        Assert.All(lasting, id => Assert.Single(seen, id));
        Assert.True(pages >= lasting.Count / 3, $"{pages} pages");
        // Listed in creation order: the lasting jobs were started in this order.
        Assert.Equal(lasting, seen.Where(lasting.Contains));
        foreach (var id in startedDuring)
        {
            await WaitForEndAsync(client, id);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task ListJobs_TenThousandEndedJobs_ListedInPagesInCreationOrder()
    {
        await _server.DisposeAsync();
        List<Guid> ids = [];
        _server = await TestServer.StartAsync(null, state =>
            ids = EndedJobRecords.Write(state, 10_000, [TestServer.Alice, TestServer.Bob], DateTimeOffset.UtcNow.AddDays(-1)), Token);
        var admin = _server.Client(TestServer.Admin);

        var seen = new List<string>();
        var token = "";
        do
        {
            var page = await admin.ListJobsAsync(new ListJobsRequest { PageSize = 1000, PageToken = token }, cancellationToken: Token);
            Assert.True(page.Jobs.Count <= 1000);
            seen.AddRange(page.Jobs.Select(j => j.JobId));
            token = page.NextPageToken;
        }
        while (token.Length > 0);
        var alices = await ListAllAsync(_server.Client(TestServer.Alice), new ListJobsRequest());

        Assert.Equal(ids.Select(id => id.ToString("D")), seen);
        Assert.Equal(ids.Where((_, i) => i % 2 == 0).Select(id => id.ToString("D")), alices.Select(j => j.JobId));
    }

    [Fact(Timeout = 60_000)]
    public async Task ListJobs_DefaultAndLargePageSize_ServerDefaultAndMaximum()
    {
        await _server.DisposeAsync();
        _server = await TestServer.StartAsync(null, state =>
            EndedJobRecords.Write(state, 1_050, [TestServer.Alice], DateTimeOffset.UtcNow.AddDays(-1)), Token);
        var client = _server.Client(TestServer.Alice);

        var byDefault = await client.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token);
        var large = await client.ListJobsAsync(new ListJobsRequest { PageSize = 100_000 }, cancellationToken: Token);

        Assert.Equal(100, byDefault.Jobs.Count);
        Assert.NotEmpty(byDefault.NextPageToken);
        Assert.Equal(1000, large.Jobs.Count);
        var rest = await client.ListJobsAsync(new ListJobsRequest { PageSize = 100_000, PageToken = large.NextPageToken }, cancellationToken: Token);
        Assert.Equal(50, rest.Jobs.Count);
        Assert.Empty(rest.NextPageToken);
    }

    [Fact(Timeout = 60_000)]
    public async Task ListJobs_StateFilter_OnlyJobsInThoseStates()
    {
        var client = _server.Client(TestServer.Alice);
        var running = await _server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");
        var exited = await _server.StartTestProcessAsync(TestServer.Alice, "exit", "3");
        await WaitForEndAsync(client, exited.JobId);

        var onlyRunning = await ListAllAsync(client, new ListJobsRequest { States = { JobState.Running } });
        var onlyExited = await ListAllAsync(client, new ListJobsRequest { States = { JobState.Exited } });
        var both = await ListAllAsync(client, new ListJobsRequest { States = { JobState.Exited, JobState.Running } });

        Assert.Equal([running.JobId], onlyRunning.Select(j => j.JobId));
        Assert.Equal([exited.JobId], onlyExited.Select(j => j.JobId));
        Assert.Equal([running.JobId, exited.JobId], both.Select(j => j.JobId));
        await client.StopJobAsync(new StopJobRequest { JobId = running.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task ListJobs_StartedSince_OnlyJobsStartedFromThen()
    {
        var client = _server.Client(TestServer.Alice);
        var early = await _server.StartTestProcessAsync(TestServer.Alice, "exit", "0");
        await WaitForEndAsync(client, early.JobId);
        await Task.Delay(50, Token);
        var late = await _server.StartTestProcessAsync(TestServer.Alice, "exit", "0");

        var since = await ListAllAsync(client, new ListJobsRequest { StartedSince = late.StartedAt });
        var all = await ListAllAsync(client, new ListJobsRequest { StartedSince = early.StartedAt });

        Assert.Equal([late.JobId], since.Select(j => j.JobId));
        Assert.Equal([early.JobId, late.JobId], all.Select(j => j.JobId));
        await WaitForEndAsync(client, late.JobId);
    }

    [Fact(Timeout = 60_000)]
    public async Task ListJobs_OwnerFilter_AdminGetsThatOwnerUserOnlyThemselves()
    {
        var alices = await _server.StartTestProcessAsync(TestServer.Alice, "exit", "0");
        var bobs = await _server.StartTestProcessAsync(TestServer.Bob, "exit", "0");

        var adminForBob = await ListAllAsync(_server.Client(TestServer.Admin), new ListJobsRequest { Owner = TestServer.Bob });
        var aliceForHerself = await ListAllAsync(_server.Client(TestServer.Alice), new ListJobsRequest { Owner = TestServer.Alice });
        var denied = await Assert.ThrowsAsync<RpcException>(async () =>
            await _server.Client(TestServer.Alice).ListJobsAsync(new ListJobsRequest { Owner = TestServer.Bob }, cancellationToken: Token));

        Assert.Equal([bobs.JobId], adminForBob.Select(j => j.JobId));
        Assert.Equal([alices.JobId], aliceForHerself.Select(j => j.JobId));
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        Assert.Equal("role 'user' may list only its own jobs, not those of 'bob'", denied.Status.Detail);
        await WaitForEndAsync(_server.Client(TestServer.Alice), alices.JobId);
        await WaitForEndAsync(_server.Client(TestServer.Bob), bobs.JobId);
    }

    [Fact(Timeout = 60_000)]
    public async Task ListJobs_BadOrForeignPageToken_InvalidArgument()
    {
        for (var i = 0; i < 3; i++)
        {
            var job = await _server.StartTestProcessAsync(TestServer.Alice, "exit", "0");
            await WaitForEndAsync(_server.Client(TestServer.Alice), job.JobId);
        }

        var alice = _server.Client(TestServer.Alice);
        var first = await alice.ListJobsAsync(new ListJobsRequest { PageSize = 1 }, cancellationToken: Token);
        Assert.NotEmpty(first.NextPageToken);

        var garbage = await ListFailsAsync(alice, new ListJobsRequest { PageToken = "not-a-token" });
        var otherFilter = await ListFailsAsync(alice, new ListJobsRequest { PageSize = 1, PageToken = first.NextPageToken, States = { JobState.Exited } });
        var otherCaller = await ListFailsAsync(_server.Client(TestServer.Bob), new ListJobsRequest { PageSize = 1, PageToken = first.NextPageToken });
        var negative = await ListFailsAsync(alice, new ListJobsRequest { PageSize = -1 });
        var badState = await ListFailsAsync(alice, new ListJobsRequest { States = { JobState.Unspecified } });
        var resumed = await alice.ListJobsAsync(new ListJobsRequest { PageSize = 1, PageToken = first.NextPageToken }, cancellationToken: Token);

        Assert.StartsWith("page_token: 'not-a-token' is not a page token;", garbage, StringComparison.Ordinal);
        Assert.StartsWith("page_token: was issued for other filters or another caller;", otherFilter, StringComparison.Ordinal);
        Assert.StartsWith("page_token: was issued for other filters or another caller;", otherCaller, StringComparison.Ordinal);
        Assert.StartsWith("page_size: -1 is negative", negative, StringComparison.Ordinal);
        Assert.StartsWith("states: 'Unspecified' is not a state", badState, StringComparison.Ordinal);
        Assert.NotEqual(first.Jobs[0].JobId, Assert.Single(resumed.Jobs).JobId);
    }

    [Fact(Timeout = 60_000)]
    public async Task ListJobs_LongArgs_CutToOneKibAndFlaggedGetJobHasThemAll()
    {
        var client = _server.Client(TestServer.Alice);
        string[] args = ["sleep", "30", .. Enumerable.Range(0, 5).Select(i => new string((char)('a' + i), 300)), "é" + new string('z', 2000)];
        var request = new StartJobRequest { Command = TestServer.TestProcess };
        request.Args.AddRange(args);
        var job = (await client.StartJobAsync(request, cancellationToken: Token)).Job;
        var shortJob = await _server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");

        var listed = await ListAllAsync(client, new ListJobsRequest());
        var full = (await client.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job;

        var entry = Assert.Single(listed, j => j.JobId == job.JobId);
        Assert.True(entry.ArgsTruncated);
        // "sleep" and "30" (7 bytes), three whole args of 300 (907), then 117 bytes of the fourth: 1024 in all.
        Assert.Equal([.. args[..5], new string('d', 117)], entry.Args);
        Assert.Equal(1024, entry.Args.Sum(a => System.Text.Encoding.UTF8.GetByteCount(a)));
        Assert.False(full.ArgsTruncated);
        Assert.Equal(args, full.Args);
        var other = Assert.Single(listed, j => j.JobId == shortJob.JobId);
        Assert.False(other.ArgsTruncated);
        Assert.Equal(["sleep", "30"], other.Args);
        await client.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
        await client.StopJobAsync(new StopJobRequest { JobId = shortJob.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task ListJobs_EntryWhileRunningAndAfterTheEnd_FullViewSameAsGetJobBasicViewWithoutLimitsIsolationUsage()
    {
        var client = _server.Client(TestServer.Alice);
        // No limits: this host has no cgroup controllers (a full entry still carries the empty limits message).
        var request = new StartJobRequest { Command = TestServer.TestProcess, Args = { "sleep", "30" } };
        // Namespaces that leave paths alone (a mount namespace gets its own /tmp, where a checkout may live).
        request.Isolation = new Isolation { Uts = true, Ipc = true };
        var job = (await client.StartJobAsync(request, cancellationToken: Token)).Job;

        var running = Assert.Single(await ListAllAsync(client, new ListJobsRequest { View = JobView.Full }), j => j.JobId == job.JobId);
        Assert.Equal(JobState.Running, running.State);
        Assert.Equal(job.Pid, running.Pid);
        Assert.Null(running.EndedAt);

        await client.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
        var full = (await client.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job;
        // An ended job's entry is encoded once per view and reused: the first listing after the end and a later one
        // both carry the final status, exactly as GetJob has it (its args are short, so nothing is cut).
        var ended = Assert.Single(await ListAllAsync(client, new ListJobsRequest { View = JobView.Full }), j => j.JobId == job.JobId);
        var again = Assert.Single(await ListAllAsync(client, new ListJobsRequest { View = JobView.Full }), j => j.JobId == job.JobId);
        var basic = Assert.Single(await ListAllAsync(client, new ListJobsRequest()), j => j.JobId == job.JobId);
        var basicAgain = Assert.Single(await ListAllAsync(client, new ListJobsRequest { View = JobView.Basic }), j => j.JobId == job.JobId);

        Assert.Equal(JobState.Stopped, full.State);
        Assert.NotNull(full.Limits);
        Assert.True(full.Isolation.Uts);
        Assert.NotNull(full.Usage);
        Assert.Equal(full, ended);
        Assert.Equal(full, again);
        var withoutDetail = full.Clone();
        withoutDetail.Limits = null;
        withoutDetail.Isolation = null;
        withoutDetail.Usage = null;
        Assert.Equal(withoutDetail, basic);
        Assert.Equal(withoutDetail, basicAgain);
    }

    [Fact(Timeout = 30_000)]
    public async Task ListJobs_UnknownView_InvalidArgumentNamingTheViews()
    {
        var detail = await ListFailsAsync(_server.Client(TestServer.Alice), new ListJobsRequest { View = (JobView)7 });

        Assert.Equal("view: 7 is not a view; use JOB_VIEW_BASIC (the default) or JOB_VIEW_FULL", detail);
    }

    private static async Task<List<JobStatus>> ListAllAsync(global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient client, ListJobsRequest request)
    {
        var jobs = new List<JobStatus>();
        do
        {
            var page = await client.ListJobsAsync(request, cancellationToken: Token);
            jobs.AddRange(page.Jobs);
            request = request.Clone();
            request.PageToken = page.NextPageToken;
        }
        while (request.PageToken.Length > 0);
        return jobs;
    }

    private static async Task<string> ListFailsAsync(global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient client, ListJobsRequest request)
    {
        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.ListJobsAsync(request, cancellationToken: Token));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        return e.Status.Detail;
    }

    private static async Task WaitForEndAsync(global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient client, string id)
    {
        while ((await client.GetJobAsync(new GetJobRequest { JobId = id }, cancellationToken: Token)).Job.State == JobState.Running)
        {
            await Task.Delay(20, Token);
        }
    }
}
