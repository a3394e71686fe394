using Grpc.Core;
using JobWorker.Pki;
using JobWorker.Protocol.V1;
using JobWorker.Server.Hosting;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>
/// JobWorker:Limits through the real server: requests above a maximum are refused naming the limit, the value and the
/// maximum (and where it is set), and unusable settings stop the server at start-up.
/// </summary>
public sealed class LimitsTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static readonly Dictionary<string, string?> Maximums = new()
    {
        ["JobWorker:Limits:Maximum:MemoryBytes"] = "1073741824",
        ["JobWorker:Limits:Maximum:CpuCores"] = "8",
        ["JobWorker:Limits:Roles:user:Maximum:CpuCores"] = "2",
        ["JobWorker:Limits:Users:bob:Maximum:MaxProcesses"] = "100",
        ["JobWorker:Limits:Users:bob:Maximum:CpuCores"] = "0.5",
    };

    public static TheoryData<string, string, string> OverMaximum => new()
    {
        { TestServer.Alice, """{ "memoryBytes": "2147483648" }""", "limits.memory_bytes: 2147483648 is above the maximum of 1073741824 bytes (JobWorker:Limits:Maximum:MemoryBytes); ask for at most 1073741824" },
        { TestServer.Alice, """{ "cpuCores": 2.5 }""", "limits.cpu_cores: 2.5 is above the maximum of 2 cores (JobWorker:Limits:Roles:user:Maximum:CpuCores); ask for at most 2" },
        { TestServer.Admin, """{ "cpuCores": 9 }""", "limits.cpu_cores: 9 is above the maximum of 8 cores (JobWorker:Limits:Maximum:CpuCores); ask for at most 8" },
        { TestServer.Bob, """{ "cpuCores": 1 }""", "limits.cpu_cores: 1 is above the maximum of 0.5 cores (JobWorker:Limits:Users:bob:Maximum:CpuCores); ask for at most 0.5" },
        { TestServer.Bob, """{ "maxProcesses": "101" }""", "limits.max_processes: 101 is above the maximum of 100 processes (JobWorker:Limits:Users:bob:Maximum:MaxProcesses); ask for at most 100" },
    };

    [Theory(Timeout = 60_000)]
    [MemberData(nameof(OverMaximum))]
    public async Task StartJob_AboveMaximum_InvalidArgumentNamingLimitValueAndMaximum(string user, string limitsJson, string message)
    {
        await using var server = await TestServer.StartAsync(Maximums, Token);
        var request = new StartJobRequest
        {
            Command = TestServer.TestProcess,
            Limits = Google.Protobuf.JsonParser.Default.Parse<ResourceLimits>(limitsJson),
        };

        var e = await Assert.ThrowsAsync<RpcException>(async () => await server.Client(user).StartJobAsync(request, cancellationToken: Token));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Equal(message, e.Status.Detail);
        Assert.Equal(0, server.Metrics.JobsStarted);
        Assert.Empty(Directory.GetDirectories(server.CgroupRoot));
    }

    [Fact(Timeout = 60_000)]
    public async Task StartJob_AtOrBelowMaximumOrAnotherRolesMaximum_PassesTheCheck()
    {
        await using var server = await TestServer.StartAsync(Maximums, Token);
        var controllers = File.ReadAllText(Path.Combine(server.CgroupRoot, "cgroup.controllers"));
        Assert.SkipWhen(controllers.Contains("cpu", StringComparison.Ordinal), "the cpu controller is available here: the limit would be applied, not refused for it");

        // The admin's maximum is the global 8 cores, not the user role's 2: the request passes the check and reaches
        // the runner, which refuses it only because this host has no cpu controller.
        foreach (var (user, cores) in new[] { (TestServer.Admin, 4.0), (TestServer.Alice, 2.0), (TestServer.Bob, 0.5) })
        {
            var e = await Assert.ThrowsAsync<RpcException>(async () => await server.Client(user).StartJobAsync(
                new StartJobRequest { Command = TestServer.TestProcess, Limits = new() { CpuCores = cores } }, cancellationToken: Token));
            Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
            Assert.Contains("cpu controller", e.Status.Detail, StringComparison.Ordinal);
        }

        // Without limits nothing is refused: maximums need no controller, and no default is set.
        var job = await server.StartTestProcessAsync(TestServer.Bob, "exit", "0");
        var got = await server.Client(TestServer.Bob).GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token);
        Assert.False(got.Job.Limits.HasCpuCores);
        Assert.False(got.Job.Limits.HasMemoryBytes);
        Assert.False(got.Job.Limits.HasMaxProcesses);
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_DefaultWithoutItsController_ServerRefusesToStartNamingTheSetting()
    {
        var root = Path.Combine(TestServer.CgroupMount, "cgroup.controllers");
        Assert.SkipWhen(File.ReadAllText(root).Contains("memory", StringComparison.Ordinal), "the memory controller is available here");

        var e = await Assert.ThrowsAsync<Core.Jobs.JobWorkerException>(async () => await TestServer.StartAsync(
            new Dictionary<string, string?> { ["JobWorker:Limits:Roles:user:Default:MemoryBytes"] = "268435456" }, Token));

        Assert.StartsWith("JobWorker:Limits:Roles:user:Default:MemoryBytes sets a default limit, but the cgroup v2 memory controller is not available to jobs under ", e.Message, StringComparison.Ordinal);
        Assert.EndsWith("(available: none). Remove the default, or run the server where the controller is enabled (systemd: Delegate=yes and --delegated-cgroup, see docs/operations.md).", e.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_UserGroupLimitWithoutItsController_ServerRefusesToStart()
    {
        Assert.SkipWhen(File.ReadAllText(Path.Combine(TestServer.CgroupMount, "cgroup.controllers")).Contains("pids", StringComparison.Ordinal), "the pids controller is available here");

        var e = await Assert.ThrowsAsync<Core.Jobs.CgroupControllerUnavailableException>(async () => await TestServer.StartAsync(
            new Dictionary<string, string?> { ["JobWorker:Limits:UserGroup:MaxProcesses"] = "500" }, Token));

        Assert.StartsWith("UserLimits needs the pids controller.", e.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    [Trait("Category", "CgroupControllers")]
    public async Task StartJob_WithoutLimits_GetsTheDefaultsWhichAreAppliedRecordedAndReported()
    {
        var controllers = File.ReadAllText(Path.Combine(TestServer.CgroupMount, "cgroup.subtree_control"));
        Assert.SkipUnless(new[] { "cpu", "memory", "pids" }.All(c => controllers.Contains(c, StringComparison.Ordinal)),
            "the cgroup2 root does not delegate cpu, memory and pids (hybrid/v1 host); run tests/vm/run-controller-tests.sh");
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Limits:Default:MemoryBytes"] = "268435456",
            ["JobWorker:Limits:Default:CpuCores"] = "0.5",
            ["JobWorker:Limits:Users:alice:Default:MaxProcesses"] = "64",
            ["JobWorker:Limits:UserGroup:MaxProcesses"] = "500",
            ["JobWorker:Limits:Users:alice:UserGroup:MemoryBytes"] = "536870912",
        }, Token);
        var alice = server.Client(TestServer.Alice);

        var started = (await alice.StartJobAsync(new StartJobRequest { Command = TestServer.TestProcess, Args = { "sleep", "30" } }, cancellationToken: Token)).Job;
        var own = (await alice.StartJobAsync(new StartJobRequest { Command = TestServer.TestProcess, Args = { "sleep", "30" }, Limits = new() { MemoryBytes = 128 << 20 } }, cancellationToken: Token)).Job;
        var bobs = (await server.Client(TestServer.Bob).StartJobAsync(new StartJobRequest { Command = TestServer.TestProcess, Args = { "sleep", "30" } }, cancellationToken: Token)).Job;
        var got = (await alice.GetJobAsync(new GetJobRequest { JobId = started.JobId }, cancellationToken: Token)).Job;

        // Reported: in StartJob's answer and GetJob's, the limits the job runs with.
        foreach (var limits in new[] { started.Limits, got.Limits })
        {
            Assert.Equal(0.5, limits.CpuCores);
            Assert.Equal(268435456, limits.MemoryBytes);
            Assert.Equal(64, limits.MaxProcesses);
        }

        Assert.Equal(128 << 20, own.Limits.MemoryBytes);
        Assert.False(bobs.Limits.HasMaxProcesses); // alice's default is hers
        Assert.Equal(268435456, bobs.Limits.MemoryBytes);

        // Applied: the job's group and its user's group hold them.
        string Read(string user, string job, string file) => File.ReadAllText(Path.Combine(server.CgroupRoot, "users", user, job, file)).Trim();
        string Id(JobStatus job) => Guid.Parse(job.JobId).ToString("N");
        Assert.Equal("268435456", Read("alice", Path.Combine(Id(started), "job"), "memory.max"));
        Assert.Equal("50000 100000", Read("alice", Path.Combine(Id(started), "job"), "cpu.max"));
        Assert.Equal("64", Read("alice", Path.Combine(Id(started), "job"), "pids.max"));
        Assert.Equal("134217728", Read("alice", Path.Combine(Id(own), "job"), "memory.max"));
        Assert.Equal("max", Read("bob", Path.Combine(Id(bobs), "job"), "pids.max"));
        Assert.Equal("536870912", Read("alice", "", "memory.max"));
        Assert.Equal("500", Read("alice", "", "pids.max"));
        Assert.Equal("500", Read("bob", "", "pids.max"));
        Assert.Equal("max", Read("bob", "", "memory.max"));

        foreach (var (client, job) in new[] { (alice, started), (alice, own), (server.Client(TestServer.Bob), bobs) })
        {
            await client.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
        }
    }

    public static TheoryData<string, string, string> InvalidSettings => new()
    {
        { "JobWorker:Limits:Default:MemoryBytes", "-1", "JobWorker:Limits:Default:MemoryBytes must be between 1048576 (1 MiB) and 1125899906842624 (is -1)" },
        { "JobWorker:Limits:Maximum:CpuCores", "0", "JobWorker:Limits:Maximum:CpuCores must be between 0.01 and 1024 cores (is 0)" },
        { "JobWorker:Limits:Roles:superuser:Maximum:CpuCores", "1", "JobWorker:Limits:Roles:superuser: unknown role; use 'admin' or 'user'" },
        { "JobWorker:Limits:Users:../x:Default:CpuCores", "1", "JobWorker:Limits:Users:../x: user name '../x' contains '/'; use letters, digits, '.', '_' or '-'" },
        { "JobWorker:Limits:UserGroup:CpuWeight", "0", "JobWorker:Limits:UserGroup:CpuWeight must be between 1 and 10000; the kernel's default is 100 (is 0)" },
        { "JobWorker:Limits:Server:MemoryMinBytes", "1048576", "JobWorker:Limits:Server:MemoryMinBytes protects the server's own cgroup, which exists only with JobWorker:UseDelegatedCgroup; without it, protect the server where it runs (systemd: MemoryMin= and OOMScoreAdjust= in its unit)" },
    };

    [Theory]
    [MemberData(nameof(InvalidSettings))]
    public void Build_InvalidLimitSetting_RefusedNamingIt(string key, string value, string message)
    {
        var e = Assert.Throws<StartupException>(() => Build(new() { [key] = value }));

        Assert.Equal("invalid configuration: " + message, e.Message);
    }

    [Fact]
    public void Build_DefaultAboveTheMaximumForTheSameCallers_Refused()
    {
        var e = Assert.Throws<StartupException>(() => Build(new()
        {
            ["JobWorker:Limits:Default:MemoryBytes"] = "536870912",
            ["JobWorker:Limits:Users:carol:Maximum:MemoryBytes"] = "268435456",
        }));

        // carol's maximum is lower than the default everyone gets: her requests without a memory limit could never start.
        Assert.Equal("invalid configuration: JobWorker:Limits:Default:MemoryBytes (536870912) is above JobWorker:Limits:Users:carol:Maximum:MemoryBytes (268435456); a default must not exceed the maximum that applies to the same callers", e.Message);
    }

    [Theory]
    [InlineData("JobWorker:Limits:Default:Memory", "Memory")]
    [InlineData("JobWorker:Limits:UserGroup:memory.max", "memory.max")]
    public void Build_UnknownLimitKey_RefusedNamingIt(string key, string name)
    {
        var e = Assert.Throws<StartupException>(() => Build(new() { [key] = "1" }));

        Assert.StartsWith("invalid configuration: JobWorker:Limits: ", e.Message, StringComparison.Ordinal);
        Assert.Contains($"'{name}'", e.Message, StringComparison.Ordinal);
    }

    private static WebApplication Build(Dictionary<string, string?> settings)
    {
        var directory = Path.Combine(Path.GetTempPath(), "jobworker-srvtest-" + Guid.NewGuid().ToString("N")[..12]);
        try
        {
            var pki = DevPki.Create(directory, []);
            settings["JobWorker:CaCertificate"] = pki.CaCertificate;
            settings["JobWorker:ServerCertificate"] = pki.ServerCertificate;
            settings["JobWorker:ServerKey"] = pki.ServerKey;
            return ServerApp.Build([], builder => builder.Configuration.AddInMemoryCollection(settings));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
