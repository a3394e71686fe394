using System.Diagnostics;
using System.Text.RegularExpressions;
using Grpc.Core;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>Shutdown and startup: stopping leaves no process and no cgroup; the real binary exits 0 on SIGTERM and refuses bad starts clearly.</summary>
public sealed partial class ShutdownTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 60_000)]
    public async Task Stop_RunningJobsAndFollower_NoProcessNoCgroupFollowerGetsFinalStatus()
    {
        var server = await TestServer.StartAsync(cancellationToken: Token);
        JobStatus[] jobs;
        StreamResult follower;
        try
        {
            var client = server.Client(TestServer.Alice);
            jobs =
            [
                await server.StartTestProcessAsync(TestServer.Alice, "sleep", "60"),
                await server.StartTestProcessAsync(TestServer.Bob, "fork", "3", "sleep", "60"),
                await server.StartTestProcessAsync(TestServer.Alice, "ignore-sigterm", "echo", "ready", "sleep", "60"),
            ];
            using var call = client.StreamOutput(new StreamOutputRequest { JobId = jobs[2].JobId, Follow = true }, cancellationToken: Token);
            Assert.True(await call.ResponseStream.MoveNext(Token)); // SIGTERM handler installed
            var rest = StreamResult.ReadAsync(call, Token);

            var stopwatch = Stopwatch.StartNew();
            await server.App.StopAsync(Token);
            follower = await rest;

            // Within the 2 s test grace plus a margin (the SIGTERM-ignoring job needs the SIGKILL).
            Assert.InRange(stopwatch.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(10));
        }
        finally
        {
            await server.DisposeAsync(); // throws if the cgroup subtree is left behind
        }

        Assert.All(jobs, job => Assert.False(Directory.Exists($"/proc/{job.Pid}"), $"job process {job.Pid} survived shutdown"));
        Assert.False(Directory.Exists(server.CgroupRoot));
        Assert.Equal(JobState.Stopped, follower.FinalStatus?.State);
    }

    [Fact(Timeout = 60_000)]
    public async Task Stop_DuringGrace_HealthNotServingAndNewJobsUnavailable()
    {
        await using var server = await TestServer.StartAsync(cancellationToken: Token);
        var alice = server.Client(TestServer.Alice);
        var health = new Grpc.Health.V1.Health.HealthClient(server.Channel(server.ClientCertificate(TestServer.Alice)));
        var job = await server.StartTestProcessAsync(TestServer.Alice, "ignore-sigterm", "echo", "ready", "sleep", "60");
        using (var call = alice.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token))
        {
            Assert.True(await call.ResponseStream.MoveNext(Token));
        }

        // Warm the health client's connection before shutdown begins.
        await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), cancellationToken: Token);

        // The job ignores SIGTERM, so the server spends the 2 s grace stopping it: the window to observe.
        var stopping = server.App.StopAsync(Token);
        while (!server.Host.IsStopping)
        {
            await Task.Yield();
        }

        var status = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), cancellationToken: Token);
        var e = await Assert.ThrowsAsync<RpcException>(() => server.StartTestProcessAsync(TestServer.Alice, "exit", "0"));
        await stopping;

        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.NotServing, status.Status);
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_SigtermWithStopJobsOnShutdown_StopsJobsRemovesCgroupsExitsZero()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        using var process = env.Start(extraArgs: ["--stop-jobs-on-shutdown", "true"]);
        var address = await env.WaitForListeningAsync(process);
        var client = env.Client(address, TestServer.Alice);
        var job = (await client.StartJobAsync(new StartJobRequest { Command = TestServer.TestProcess, Args = { "sleep", "60" } }, cancellationToken: Token)).Job;
        Assert.True(Directory.Exists($"/proc/{job.Pid}"));

        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync(Token);
        }

        await process.WaitForExitAsync(Token);

        Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}; output:\n{env.Output}");
        Assert.False(Directory.Exists($"/proc/{job.Pid}"), "the job survived the server");
        Assert.False(Directory.Exists(env.CgroupRoot), "the cgroup subtree survived the server");
        Assert.Contains("Shutdown complete", env.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_NotRoot_RefusesWithClearMessage()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        using var process = env.Start(asUser: "nobody");

        await process.WaitForExitAsync(Token);

        Assert.Equal(1, process.ExitCode);
        Assert.Contains("must run as root", env.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_CgroupSubtreeCannotBeCreated_RefusesWithClearMessage()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        using var process = env.Start(extraArgs: ["--cgroup-root", "/proc/jobworker-cannot-exist"]);

        await process.WaitForExitAsync(Token);

        Assert.Equal(1, process.ExitCode);
        Assert.Contains("cannot start the job runner", env.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Listening for gRPC", env.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_InvalidSettings_RefusesNamingEachSetting()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        using var process = env.Start(extraArgs: ["--listen", "nowhere", "--max-running-jobs", "-3"]);

        await process.WaitForExitAsync(Token);

        Assert.Equal(1, process.ExitCode);
        Assert.Contains("JobWorker:Listen", env.Output, StringComparison.Ordinal);
        Assert.Contains("JobWorker:MaxRunningJobsPerUser", env.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_InvalidQuotaRetentionAndDiskSettings_RefusesNamingEachSetting()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        using var process = env.Start(extraArgs:
        [
            "--JobWorker:Quotas:Roles:root:MaxRunningJobs=1",
            "--JobWorker:Quotas:Users:alice:MaxLogBytes=-1",
            "--JobWorker:Retention:EndedJobs=-00:01:00",
            "--JobWorker:Disk:MinFreePercent=150",
        ]);

        await process.WaitForExitAsync(Token);

        Assert.Equal(1, process.ExitCode);
        Assert.Contains("JobWorker:Quotas:Roles:root: 'root' is not a role; the roles are 'user' and 'admin'", env.Output, StringComparison.Ordinal);
        Assert.Contains("JobWorker:Quotas:Users:alice:MaxLogBytes must be 0 (no quota) or positive (is -1)", env.Output, StringComparison.Ordinal);
        Assert.Contains("JobWorker:Retention:EndedJobs must be positive", env.Output, StringComparison.Ordinal);
        Assert.Contains("JobWorker:Disk:MinFreePercent must be at least 0 (off) and below 100 (is 150)", env.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Listening for gRPC", env.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_MissingCertificates_RefusesNamingTheFile()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        using var process = env.Start(extraArgs: ["--ca", "/nonexistent/ca.crt"]);

        await process.WaitForExitAsync(Token);

        Assert.Equal(1, process.ExitCode);
        Assert.Contains("/nonexistent/ca.crt", env.Output, StringComparison.Ordinal);
        Assert.Contains("certs init", env.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_EnvironmentVariableSettings_Applied()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        env.Environment["JOBWORKER__MAXARGUMENTS"] = "1";
        using var process = env.Start();
        var address = await env.WaitForListeningAsync(process);
        var client = env.Client(address, TestServer.Alice);

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.StartJobAsync(new StartJobRequest { Command = TestServer.TestProcess, Args = { "exit", "0" } }, cancellationToken: Token));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("MaxArguments", e.Status.Detail, StringComparison.Ordinal);
        process.Kill();
        await process.WaitForExitAsync(Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_MetricsPort_ServesPrometheusTextOnLoopbackOnly()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        using var process = env.Start(extraArgs: ["--metrics-listen", "127.0.0.1:0"]);
        var address = await env.WaitForListeningAsync(process);
        var client = env.Client(address, TestServer.Alice);
        await client.StartJobAsync(new StartJobRequest { Command = TestServer.TestProcess, Args = { "exit", "0" } }, cancellationToken: Token);
        var metricsLine = await env.WaitForLineAsync(MetricsLine());

        using var http = new HttpClient();
        var text = await http.GetStringAsync($"http://{MetricsLine().Match(metricsLine).Groups[1].Value}/metrics", Token);

        Assert.Matches(@"(?m)^jobworker_jobs_started_total\{[^}]*\} 1$", text);
        Assert.Contains("# TYPE jobworker_streams_active gauge", text, StringComparison.Ordinal);
        // The runtime's and Kestrel's meters, exported by the OpenTelemetry libraries shipped with the binary.
        Assert.Contains("# TYPE dotnet_gc_collections_total counter", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE kestrel_tls_handshake_duration_seconds histogram", text, StringComparison.Ordinal);
        process.Kill();
        await process.WaitForExitAsync(Token);
    }

    [GeneratedRegex(@"Serving Prometheus metrics on http://(\S+)/metrics")]
    private static partial Regex MetricsLine();
}
