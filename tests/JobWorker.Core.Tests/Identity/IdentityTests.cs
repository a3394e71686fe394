using System.Globalization;
using System.Text.RegularExpressions;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Identity;

/// <summary>Per-owner uids and directories (docs/design-identity.md), with real jobs under the allocated ids.</summary>
public sealed partial class IdentityTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static JobSpec Ids(string owner) => new(TestRunner.TestProcess, ["ids"]) { Owner = owner };

    private static async Task<string> RunAsync(TestRunner t, JobSpec spec)
    {
        var job = t.Runner.Start(spec);
        var status = await job.Completion.WaitAsync(Ct);
        return t.Output(job) + $"[{status.State} {status.ExitCode} {status.Signal}]";
    }

    private static uint UidOf(string idsOutput)
    {
        var match = IdsLine().Match(idsOutput);
        Assert.True(match.Success, idsOutput);
        Assert.Equal(match.Groups[1].Value, match.Groups[2].Value); // gid = uid
        Assert.Equal("0", match.Groups[3].Value); // no supplementary groups
        return uint.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_TwoOwners_EachRunsUnderAnIdOfItsOwnFromTheRange()
    {
        await using var t = TestRunner.CreatePerOwner();
        var range = t.Runner.Options.Identity;

        var alice = UidOf(await RunAsync(t, Ids("alice")));
        var bob = UidOf(await RunAsync(t, Ids("bob")));
        var aliceAgain = UidOf(await RunAsync(t, Ids("alice")));

        Assert.NotEqual(alice, bob);
        Assert.Equal(alice, aliceAgain);
        Assert.InRange(alice, range.FirstId, range.LastId);
        Assert.InRange(bob, range.FirstId, range.LastId);
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_AfterARestart_EveryOwnerKeepsItsId()
    {
        await using var t = TestRunner.CreatePerOwner();
        var alice = UidOf(await RunAsync(t, Ids("alice")));
        var bob = UidOf(await RunAsync(t, Ids("bob")));

        // Asked in the other order after the restart: an allocation by order would swap them.
        await t.RestartAsync();
        var bobAfter = UidOf(await RunAsync(t, Ids("bob")));
        var aliceAfter = UidOf(await RunAsync(t, Ids("alice")));
        var carol = UidOf(await RunAsync(t, Ids("carol")));

        Assert.Equal((alice, bob), (aliceAfter, bobAfter));
        Assert.DoesNotContain(carol, new[] { alice, bob });
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_RangeExhausted_RefusedNamingTheRangeAndNothingLost()
    {
        await using var t = TestRunner.CreatePerOwner(ids: 2);
        var range = t.Runner.Options.Identity;
        var alice = UidOf(await RunAsync(t, Ids("alice")));
        var bob = UidOf(await RunAsync(t, Ids("bob")));

        var ex = Assert.Throws<JobStartException>(() => t.Runner.Start(Ids("carol")));

        Assert.Equal(JobStartFailure.UserIdsExhausted, ex.Reason);
        Assert.Equal(
            $"No id is left for owner 'carol': all 2 ids of Identity.FirstId..LastId ({range.FirstId}-{range.LastId}) are allocated to other owners (2) " +
            "or used by accounts. Widen the range (docs/operations.md); ids are never shared between owners.",
            ex.Message);
        Assert.Equal(2, t.Runner.Jobs.Count);
        Assert.Equal(2, t.JobDirectories().Count());
        Assert.False(Directory.Exists(Path.Combine(range.UserDirectoryRoot, "carol")));

        // The others keep their ids, also after a restart, and carol is still refused.
        await t.RestartAsync();
        Assert.Equal(alice, UidOf(await RunAsync(t, Ids("alice"))));
        Assert.Equal(bob, UidOf(await RunAsync(t, Ids("bob"))));
        Assert.Equal(JobStartFailure.UserIdsExhausted, Assert.Throws<JobStartException>(() => t.Runner.Start(Ids("carol"))).Reason);

        // A wider range gives carol the next id.
        await t.RestartAsync(o => o with { Identity = o.Identity with { LastId = o.Identity.LastId + 1 } });
        Assert.Equal(range.LastId + 1, UidOf(await RunAsync(t, Ids("carol"))));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_OwnerMappedToAnAccount_RunsAsThatAccountInItsOwnDirectory()
    {
        await using var t = TestRunner.CreatePerOwner(identity: i => i with { Accounts = new Dictionary<string, string> { ["carol"] = "nobody" } });
        var root = t.Runner.Options.Identity.UserDirectoryRoot;

        var output = await RunAsync(t, new JobSpec("/bin/sh", ["-c", "id -u; id -g; pwd; stat -c '%u:%g:%a' ."]) { Owner = "carol" });

        Assert.Equal($"65534\n65534\n{root}/carol\n65534:65534:700\n[Exited 0 ]", output);
    }

    [Fact(Timeout = 30_000)]
    public void Create_MappedAccountMissing_RefusedNamingOwnerAndAccount()
    {
        var ex = Assert.Throws<ArgumentException>(() => TestRunner.CreatePerOwner(identity: i => i with { Accounts = new Dictionary<string, string> { ["carol"] = "jobworker-no-such-user" } }));

        Assert.StartsWith(
            "Identity.Accounts: owner 'carol' is mapped to the account 'jobworker-no-such-user', which does not exist in /etc/passwd. Create the account or remove the mapping.",
            ex.Message,
            StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_MappedAccountRemovedAfterStartUp_RefusedNeverAnotherAccount()
    {
        var name = "jwtest" + Guid.NewGuid().ToString("N")[..8];
        await RunToolAsync("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name);
        try
        {
            await using var t = TestRunner.CreatePerOwner(identity: i => i with { Accounts = new Dictionary<string, string> { ["carol"] = name } });
            var entry = File.ReadLines("/etc/passwd").Single(l => l.StartsWith(name + ":", StringComparison.Ordinal)).Split(':');
            Assert.Equal($"{entry[2]}\n{entry[3]}\n[Exited 0 ]", await RunAsync(t, new JobSpec("/bin/sh", ["-c", "id -u; id -g"]) { Owner = "carol" }));

            await RunToolAsync("userdel", name);
            var ex = Assert.Throws<JobStartException>(() => t.Runner.Start(Ids("carol")));

            Assert.Equal(JobStartFailure.UserNotFound, ex.Reason);
            Assert.Equal($"Owner 'carol' is mapped to the account '{name}' (Identity.Accounts), which no longer exists in /etc/passwd. Create the account again or change the mapping; the job is not run as any other account.", ex.Message);
        }
        finally
        {
            if (File.ReadLines("/etc/passwd").Any(l => l.StartsWith(name + ":", StringComparison.Ordinal)))
            {
                await RunToolAsync("userdel", name);
            }
        }
    }

    public static TheoryData<string, Func<JobIdentityOptions, JobIdentityOptions>> InvalidOptions => new()
    {
        { "Identity.FirstId..LastId (61300-61200) is empty: FirstId is above LastId.", i => i with { FirstId = 61300, LastId = 61200 } },
        { "Identity.FirstId..LastId (0-100) includes uid 0 (root): jobs would run as root.", i => i with { FirstId = 0, LastId = 100 } },
        { "Identity.FirstId..LastId (65530-65540) overlaps existing accounts (user nobody (uid 65534), group nogroup (gid 65534))", i => i with { FirstId = 65530, LastId = 65540 } },
        { "Identity.UserDirectoryRoot (/tmp/jobworker-users) is under /tmp", i => i with { UserDirectoryRoot = "/tmp/jobworker-users" } },
        { "Identity.UserDirectoryRoot must be an absolute path, not 'relative'.", i => i with { UserDirectoryRoot = "relative" } },
        { "Identity.Accounts: owner 'carol' is mapped to 'root', which is root (uid 0)", i => i with { Accounts = new Dictionary<string, string> { ["carol"] = "root" } } },
        { "Identity.Accounts: owners 'carol' and 'dave' are mapped to the same uid 65534", i => i with { Accounts = new Dictionary<string, string> { ["carol"] = "nobody", ["dave"] = "nobody" } } },
    };

    [Theory(Timeout = 30_000)]
    [MemberData(nameof(InvalidOptions))]
    public void Create_InvalidIdentityOptions_RefusedNamingTheSetting(string expected, Func<JobIdentityOptions, JobIdentityOptions> change)
    {
        var ex = Assert.Throws<ArgumentException>(() => TestRunner.CreatePerOwner(identity: change));

        Assert.StartsWith(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public void Create_UserDirectoryRootWritableByOthers_Refused()
    {
        var root = Path.Combine("/var/tmp", "jobworker-test-users-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        File.SetUnixFileMode(root, (UnixFileMode)0b111_111_111);
        try
        {
            var ex = Assert.Throws<ArgumentException>(() => TestRunner.CreatePerOwner(identity: i => i with { UserDirectoryRoot = root }));

            Assert.StartsWith($"Identity.UserDirectoryRoot ({root}) must be owned by root and writable by no one else (it is uid 0, mode 777)", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root);
            }
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_PerOwnerWithoutOwner_RefusedNamingTheField()
    {
        await using var t = TestRunner.CreatePerOwner();

        var missing = Assert.Throws<ArgumentException>(() => t.Runner.Start(new JobSpec("/bin/true")));
        var invalid = Assert.Throws<ArgumentException>(() => t.Runner.Start(new JobSpec("/bin/true") { Owner = "../alice" }));

        Assert.StartsWith("Owner is required", missing.Message, StringComparison.Ordinal);
        Assert.StartsWith("Owner '../alice' is not a valid owner name", invalid.Message, StringComparison.Ordinal);
        Assert.Empty(t.JobDirectories());
    }

    [Theory(Timeout = 30_000)]
    [InlineData(JobIsolation.None)]
    [InlineData(JobIsolation.Pid | JobIsolation.Mount)]
    public async Task Start_NoWorkingDirectory_RunsInTheOwnersPrivateDirectory(JobIsolation isolation)
    {
        await using var t = TestRunner.CreatePerOwner();
        var root = t.Runner.Options.Identity.UserDirectoryRoot;
        const string Script = "id -u; pwd; echo HOME=$HOME; stat -c '%u:%g:%a' .; echo data > file && cat file";

        var output = await RunAsync(t, new JobSpec("/bin/sh", ["-c", Script]) { Owner = "alice", Isolation = isolation });
        var uid = UidOf(await RunAsync(t, Ids("alice")));
        var elsewhere = await RunAsync(t, new JobSpec("/bin/sh", ["-c", "pwd"]) { Owner = "alice", Isolation = isolation, WorkingDirectory = "/" });

        Assert.Equal($"{uid}\n{root}/alice\nHOME={root}/alice\n{uid}:{uid}:700\ndata\n[Exited 0 ]", output);
        Assert.Equal("/\n[Exited 0 ]", elsewhere);
    }

    [Theory(Timeout = 30_000)]
    [InlineData(JobIsolation.None)]
    [InlineData(JobIsolation.Pid | JobIsolation.Mount)]
    public async Task Start_AnotherOwnersDirectory_CannotBeListedOrRead(JobIsolation isolation)
    {
        await using var t = TestRunner.CreatePerOwner();
        var alice = Path.Combine(t.Runner.Options.Identity.UserDirectoryRoot, "alice");
        await RunAsync(t, new JobSpec("/bin/sh", ["-c", "echo secret > notes"]) { Owner = "alice", Isolation = isolation });

        var output = await RunAsync(t, new JobSpec("/bin/sh", ["-c", $"ls {alice} 2>&1; cat {alice}/notes 2>&1; touch {alice}/x 2>&1; true"]) { Owner = "bob", Isolation = isolation });

        Assert.Equal(
            $"ls: cannot open directory '{alice}': Permission denied\ncat: {alice}/notes: Permission denied\ntouch: cannot touch '{alice}/x': Permission denied\n[Exited 0 ]",
            output);
        Assert.Equal(["notes"], Directory.GetFiles(alice).Select(Path.GetFileName));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_DirectoryChangedByHand_MadePrivateToItsOwnerAgain()
    {
        await using var t = TestRunner.CreatePerOwner();
        var alice = Path.Combine(t.Runner.Options.Identity.UserDirectoryRoot, "alice");
        await RunAsync(t, Ids("alice"));
        File.SetUnixFileMode(alice, (UnixFileMode)0b111_111_111);
        await RunToolAsync("chown", "0:0", alice);

        var output = await RunAsync(t, new JobSpec("/bin/sh", ["-c", "stat -c '%a' ."]) { Owner = "alice" });

        Assert.Equal("700\n[Exited 0 ]", output);
    }

    private static async Task RunToolAsync(string tool, params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo(tool) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = System.Diagnostics.Process.Start(start)!;
        var error = await process.StandardError.ReadToEndAsync(Ct);
        await process.WaitForExitAsync(Ct);
        Assert.True(process.ExitCode == 0, $"{tool} {string.Join(' ', args)} failed ({process.ExitCode}): {error}");
    }

    [GeneratedRegex(@"^uid=(\d+) gid=(\d+) groups=(\d+)")]
    private static partial Regex IdsLine();
}
