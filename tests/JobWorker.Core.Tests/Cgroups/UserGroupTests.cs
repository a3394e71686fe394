using System.Globalization;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Cgroups;

/// <summary>
/// Jobs live in their owner's group, <c>&lt;root&gt;/users/&lt;user&gt;/&lt;id&gt;</c>: names that could escape the
/// subtree or collide with an interface file are escaped, a user's group goes with their last job, and a restarted
/// runner finds jobs in this layout and in the flat one of earlier servers.
/// </summary>
public sealed class UserGroupTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("alice", "alice")]
    [InlineData("a_b-c9", "a_b-c9")]
    [InlineData("..", "%2E%2E")]
    [InlineData(".", "%2E")]
    [InlineData("a/b", "a%2Fb")]
    [InlineData("../../etc", "%2E%2E%2F%2E%2E%2Fetc")]
    [InlineData("cpu.max", "cpu%2Emax")]
    [InlineData("cgroup.procs", "cgroup%2Eprocs")]
    [InlineData("%41", "%2541")]
    [InlineData("a\nb", "a%0Ab")]
    [InlineData("ü", "%C3%BC")]
    [InlineData("", "%")]
    [InlineData(null, "%")]
    public void UserDirectoryName_Name_EscapedToOneSafeComponent(string? owner, string expected)
    {
        var name = CgroupTree.UserDirectoryName(owner);

        Assert.Equal(expected, name);
        Assert.DoesNotContain('/', name);
        Assert.DoesNotContain('.', name);
    }

    [Fact]
    public void UserDirectoryName_VeryLongNames_BoundedAndDistinct()
    {
        var a = CgroupTree.UserDirectoryName(new string('.', 300));
        var b = CgroupTree.UserDirectoryName(new string('.', 299) + "x");

        Assert.InRange(a.Length, 1, 200);
        Assert.InRange(b.Length, 1, 200);
        Assert.NotEqual(a, b);
        Assert.Contains("%%", a, StringComparison.Ordinal);
        Assert.DoesNotContain('.', a);
        Assert.Equal(a, CgroupTree.UserDirectoryName(new string('.', 300)));
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_JobsOfTwoUsers_EachInItsOwnGroupWhichGoesWithItsLastJob()
    {
        // Without starts made ready, which keep a user's group for a while after the user's last start (UserStartsAheadTests).
        await using var t = TestRunner.Create(o => o with { UserStartAheadTime = TimeSpan.Zero });
        var root = t.Runner.CgroupRoot;
        var alice1 = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["echo", "ready", "sleep", "60"]) { Owner = "alice" });
        var alice2 = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["echo", "ready", "sleep", "60"]) { Owner = "alice" });
        var evil = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["echo", "ready", "sleep", "60"]) { Owner = "../../evil" });
        await t.WaitForOutputAsync(evil, "ready", Ct);

        Assert.Equal(Path.Combine(root, "users", "alice", alice1.Id.ToString("N"), "job"), alice1.CgroupPath);
        Assert.Equal(Path.Combine(root, "users", "alice", alice2.Id.ToString("N"), "job"), alice2.CgroupPath);
        Assert.Equal(Path.Combine(root, "users", "%2E%2E%2F%2E%2E%2Fevil", evil.Id.ToString("N"), "job"), evil.CgroupPath);
        Assert.Equal(["users"], Directory.EnumerateDirectories(root).Select(Path.GetFileName));
        Assert.False(Directory.Exists(Path.Combine(Path.GetDirectoryName(root)!, "evil")));
        Assert.Contains(evil.Pid.ToString(CultureInfo.InvariantCulture), File.ReadAllLines(Path.Combine(evil.CgroupPath, "cgroup.procs")));

        await evil.StopAsync(TimeSpan.Zero, Ct);
        await alice1.StopAsync(TimeSpan.Zero, Ct);

        // alice still has a job: her group stays; the other user's went with its only job.
        Assert.Equal(["alice"], Directory.EnumerateDirectories(Path.Combine(root, "users")).Select(Path.GetFileName));
        Assert.Equal([alice2.Id.ToString("N")], Directory.EnumerateDirectories(Path.Combine(root, "users", "alice")).Select(Path.GetFileName));

        await alice2.StopAsync(TimeSpan.Zero, Ct);
        Assert.Empty(Directory.EnumerateDirectories(root));
    }

    [Fact(Timeout = 60_000)]
    public async Task Restart_RunningJobInUserGroup_ReattachedAndEmptyUserGroupsRemoved()
    {
        await using var t = TestRunner.Create();
        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["echo", "ready", "sleep", "60"]) { Owner = "alice" });
        await t.WaitForOutputAsync(job, "ready", Ct);
        await t.Runner.DisposeAsync();
        // A user group left empty by a server that died between a job's removal and its user's.
        var users = Path.Combine(t.Runner.CgroupRoot, "users");
        Directory.CreateDirectory(Path.Combine(users, "bob"));

        await t.RestartAsync();

        Assert.False(Directory.Exists(Path.Combine(users, "bob")));
        Assert.True(t.Runner.TryGetJob(job.Id, out var again));
        Assert.Equal(JobState.Running, again.Status.State);
        Assert.Equal(job.CgroupPath, again.CgroupPath);
        Assert.Equal(job.Pid, again.Status.Pid);
        var status = await again.StopAsync(TimeSpan.Zero, Ct);
        Assert.Equal(JobState.Stopped, status.State);
        Assert.False(TestRunner.ProcessExists(job.Pid));
        Assert.Empty(t.GroupsLeft());
    }

    [Fact(Timeout = 60_000)]
    public async Task Restart_RunningJobInFlatLayoutOfAnEarlierServer_ReattachedStoppedAndRemoved()
    {
        await using var t = TestRunner.Create();
        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["echo", "ready", "sleep", "60"]) { Owner = "alice" });
        await t.WaitForOutputAsync(job, "ready", Ct);
        await t.Runner.DisposeAsync();

        // What an earlier server made: <root>/<id>/{job,shim}. The processes move there and the new groups go.
        var root = t.Runner.CgroupRoot;
        var userGroup = Path.Combine(root, "users", "alice");
        var group = Path.Combine(userGroup, job.Id.ToString("N"));
        var flat = Path.Combine(root, job.Id.ToString("N"));
        foreach (var leaf in new[] { "shim", "job" })
        {
            Directory.CreateDirectory(Path.Combine(flat, leaf));
            foreach (var pid in File.ReadAllLines(Path.Combine(group, leaf, "cgroup.procs")))
            {
                File.WriteAllText(Path.Combine(flat, leaf, "cgroup.procs"), pid);
            }

            Directory.Delete(Path.Combine(group, leaf));
        }

        Directory.Delete(group);
        Directory.Delete(userGroup);
        Directory.Delete(Path.Combine(root, "users"));

        await t.RestartAsync();

        Assert.True(t.Runner.TryGetJob(job.Id, out var again));
        Assert.Equal(JobState.Running, again.Status.State);
        Assert.Equal(Path.Combine(flat, "job"), again.CgroupPath);
        var status = await again.StopAsync(TimeSpan.Zero, Ct);
        Assert.Equal(JobState.Stopped, status.State);
        Assert.False(TestRunner.ProcessExists(job.Pid));
        Assert.Empty(Directory.EnumerateDirectories(root));
    }

    [Fact(Timeout = 30_000)]
    public async Task Create_UserLimitsWithoutTheirController_RefusedNamingTheSetting()
    {
        await using (var probe = TestRunner.Create())
        {
            Assert.SkipWhen(probe.Runner.AvailableControllers.Contains("memory"), "the memory controller is available here; the refusal needs a host without it");
        }

        var ex = Assert.Throws<CgroupControllerUnavailableException>(() => TestRunner.Create(o => o with
        {
            UserLimitsByUser = new Dictionary<string, UserCgroupLimits> { ["alice"] = new() { MemoryBytes = 1L << 30 } },
        }));

        Assert.Equal("memory", ex.Controller);
        Assert.StartsWith("UserLimitsByUser[alice] needs the memory controller. The memory controller is not enabled in ", ex.Message, StringComparison.Ordinal);
        Assert.EndsWith("or remove the memory limits from UserLimitsByUser[alice].", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.001, null, null, null, "UserLimits.CpuCores must be between 0.01 and 4096 cores, not 0.001.")]
    [InlineData(null, 0, null, null, "UserLimits.CpuWeight must be between 1 and 10000 (the kernel's default is 100), not 0.")]
    [InlineData(null, null, 1000L, null, "UserLimits.MemoryBytes must be at least 1048576 (1 MiB), not 1000.")]
    [InlineData(null, null, null, 0L, "UserLimits.MaxProcesses must be at least 1, not 0.")]
    public void Create_InvalidUserLimits_RefusedNamingTheSetting(double? cpu, int? weight, long? memory, long? pids, string message)
    {
        var ex = Assert.Throws<ArgumentException>(() => TestRunner.Create(o => o with
        {
            UserLimits = new() { CpuCores = cpu, CpuWeight = weight, MemoryBytes = memory, MaxProcesses = pids },
        }));

        Assert.StartsWith(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_ServerMemoryMinWithoutDelegation_RefusedWithTheAlternative()
    {
        var ex = Assert.Throws<ArgumentException>(() => TestRunner.Create(o => o with { ServerMemoryMinBytes = 64L << 20 }));

        Assert.StartsWith("ServerMemoryMinBytes protects the server's own cgroup, which exists only with UseDelegatedCgroup; without it, protect the server where it runs (systemd: MemoryMin= and OOMScoreAdjust= in its unit).", ex.Message, StringComparison.Ordinal);
    }
}
