using System.Globalization;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;
using JobWorker.Core.Tests.Output;

namespace JobWorker.Core.Tests.Jobs;

/// <summary>
/// A user's next start made ready (<see cref="UserStartsAhead"/>): after a user's start, a real runner makes that user's
/// next job's groups in the user's group with an idle supervisor inside; the next start takes them (the job gets the id
/// they are named for) and launches that very supervisor. Kept for <see cref="JobRunnerOptions.UserStartAheadTime"/>,
/// then discarded with nothing left; a state directory's records of them tell a restarted runner which groups are its.
/// </summary>
public sealed partial class UserStartsAheadTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 30_000)]
    public async Task Start_SecondStartOfAUser_TakesTheGroupsAndTheSupervisorMadeReady()
    {
        await using var t = TestRunner.Create();
        var first = Start(t, "alice", "echo", "first", "exit", "0");
        await first.Completion.WaitAsync(Ct);
        var (id, supervisor) = await WaitForReadyAsync(t, "alice");
        Assert.Equal(["jobworker-shim", "pool"], CommandLine(supervisor));

        var second = Start(t, "alice", "echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(second, "ready", Ct);

        Assert.Equal(id, second.Id);
        var group = Path.Combine(t.Runner.CgroupRoot, "users", "alice", id.ToString("N"));
        Assert.Equal(Path.Combine(group, "job"), second.CgroupPath);
        Assert.Equal([supervisor], Processes(Path.Combine(group, "shim")));
        Assert.Contains(second.Pid, Processes(second.CgroupPath));
        Assert.Equal(["jobworker-shim", "pool"], CommandLine(supervisor)); // shows nothing of the job

        var status = await second.StopAsync(TimeSpan.Zero, Ct);
        Assert.Equal(JobState.Stopped, status.State);
        Assert.False(TestRunner.ProcessExists(supervisor));
        Assert.Equal("ready\n", t.Output(second));
        Assert.False(Directory.Exists(group));
        Assert.True(await RecordForgottenAsync(t, id), "the record of the group made ahead was kept");
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_IsolatedJobFromAStartMadeReady_RunsAsPid1OfItsNamespaceAndStops()
    {
        await using var t = TestRunner.Create();
        await Start(t, "alice", "exit", "0").Completion.WaitAsync(Ct);
        var (id, supervisor) = await WaitForReadyAsync(t, "alice");

        var job = t.Runner.Start(new JobSpec("/bin/sh", ["-c", "echo pid=$$ ppid=$PPID; exec sleep 60"]) { Owner = "alice", Isolation = JobIsolation.All });
        await t.WaitForOutputAsync(job, "\n", Ct);

        Assert.Equal(id, job.Id);
        Assert.Equal([supervisor], Processes(Path.Combine(Path.GetDirectoryName(job.CgroupPath)!, "shim")));
        Assert.Equal("pid=2 ppid=1\n", t.Output(job)); // the job's init is PID 1 of its namespace, the job its child
        Assert.Equal(JobState.Stopped, (await job.StopAsync(TimeSpan.Zero, Ct)).State);
        Assert.False(TestRunner.ProcessExists(supervisor));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_AnotherUser_NeverTakesAUsersStartMadeReady()
    {
        await using var t = TestRunner.Create();
        await Start(t, "alice", "exit", "0").Completion.WaitAsync(Ct);
        var (aliceNext, aliceSupervisor) = await WaitForReadyAsync(t, "alice");

        var bob = Start(t, "bob", "echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(bob, "ready", Ct);

        Assert.NotEqual(aliceNext, bob.Id);
        Assert.StartsWith(Path.Combine(t.Runner.CgroupRoot, "users", "bob") + "/", bob.CgroupPath, StringComparison.Ordinal);
        Assert.True(TestRunner.ProcessExists(aliceSupervisor));
        Assert.Equal((aliceNext, aliceSupervisor), await WaitForReadyAsync(t, "alice"));
        await bob.StopAsync(TimeSpan.Zero, Ct);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_SupervisorMadeReadyWasKilled_TheJobStartsWithOneStartedNowAndNothingIsLeft()
    {
        await using var t = TestRunner.Create();
        await Start(t, "alice", "exit", "0").Completion.WaitAsync(Ct);
        var (id, supervisor) = await WaitForReadyAsync(t, "alice");
        Assert.Equal(0, Kill(supervisor, 9)); // an operator's kill, or the OOM killer

        var job = Start(t, "alice", "echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(job, "ready", Ct);

        // Still the groups made ready (the job took their id), with a supervisor started for it; the killed one reaped.
        Assert.Equal(id, job.Id);
        var shim = Processes(Path.Combine(Path.GetDirectoryName(job.CgroupPath)!, "shim"));
        Assert.DoesNotContain(supervisor, shim);
        Assert.Single(shim);
        Assert.False(TestRunner.ProcessExists(supervisor), "the killed supervisor was left a zombie");
        Assert.Equal(JobState.Stopped, (await job.StopAsync(TimeSpan.Zero, Ct)).State);
    }

    [Fact(Timeout = 60_000)]
    public async Task StartsMadeReady_AtMostForMaxUsersAtOnce()
    {
        await using var t = TestRunner.Create();
        var users = Enumerable.Range(0, UserStartsAhead.MaxUsers + 2).Select(i => $"user{i}").ToList();
        foreach (var user in users)
        {
            await Start(t, user, "exit", "0").Completion.WaitAsync(Ct);
        }

        for (var i = 0; i < 500 && t.Runner.StartsAheadCount < UserStartsAhead.MaxUsers; i++)
        {
            await Task.Delay(10, Ct);
        }

        await Task.Delay(200, Ct); // time to make more, if it would
        Assert.Equal(UserStartsAhead.MaxUsers, t.Runner.StartsAheadCount);
        Assert.Equal(UserStartsAhead.MaxUsers, Directory.GetFiles(Path.Combine(t.StateDirectory, "ahead")).Length);
    }

    [Fact(Timeout = 30_000)]
    public async Task StartMadeReady_KeptForItsTime_ThenDiscardedLeavingNothing()
    {
        await using var t = TestRunner.Create(o => o with { UserStartAheadTime = TimeSpan.FromMilliseconds(500) });
        await Start(t, "alice", "exit", "0").Completion.WaitAsync(Ct);
        var (id, supervisor) = await WaitForReadyAsync(t, "alice");

        for (var i = 0; i < 1000 && Directory.Exists(Path.Combine(t.Runner.CgroupRoot, "users")); i++)
        {
            await Task.Delay(10, Ct);
        }

        Assert.Equal(0, t.Runner.StartsAheadCount);
        Assert.Empty(Directory.GetDirectories(t.Runner.CgroupRoot)); // the user's group went with it
        Assert.False(TestRunner.ProcessExists(supervisor), "the idle supervisor was not ended (or not reaped)");
        Assert.True(await RecordForgottenAsync(t, id), "the record of the group made ahead was kept");
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_RecordCannotBeWritten_TheStartMadeReadyIsDiscardedLeavingNothing()
    {
        using var small = SmallFileSystem.TryMount(256 * 1024);
        Assert.SkipWhen(small is null, "needs root to mount a 256 KiB tmpfs to fill");
        await using var t = TestRunner.Create(o => o with { StateDirectory = Path.Combine(small.Path, "state") });
        await Start(t, "alice", "exit", "0").Completion.WaitAsync(Ct);
        var (id, supervisor) = await WaitForReadyAsync(t, "alice");
        var filler = Path.Combine(small.Path, "filler");
        try
        {
            using (var fill = File.OpenWrite(filler))
            {
                var block = new byte[4096];
                while (true)
                {
                    try
                    {
                        fill.Write(block);
                        fill.Flush();
                    }
                    catch (IOException)
                    {
                        break; // ENOSPC
                    }
                }
            }

            var ex = Assert.Throws<JobStartException>(() => Start(t, "alice", "exit", "0"));

            Assert.Equal(JobStartFailure.StateError, ex.Reason);
            Assert.False(TestRunner.ProcessExists(supervisor), "the supervisor made ready still runs");
            Assert.False(Directory.Exists(Path.Combine(t.Runner.CgroupRoot, "users", "alice", id.ToString("N"))));
            Assert.False(File.Exists(Path.Combine(t.StateDirectory, "ahead", id.ToString("N"))));
            Assert.False(t.Runner.TryGetJob(id, out _));
        }
        finally
        {
            File.Delete(filler);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Dispose_EndsTheSupervisorsMadeReadyAndRemovesTheirGroups()
    {
        var t = TestRunner.Create();
        int supervisor;
        try
        {
            await Start(t, "alice", "exit", "0").Completion.WaitAsync(Ct);
            (_, supervisor) = await WaitForReadyAsync(t, "alice");
            await t.Runner.DisposeAsync();

            Assert.False(TestRunner.ProcessExists(supervisor));
            Assert.Empty(Directory.Exists(t.Runner.CgroupRoot) ? Directory.GetDirectories(t.Runner.CgroupRoot) : []);
            Assert.Empty(Directory.Exists(Path.Combine(t.StateDirectory, "ahead")) ? Directory.GetFiles(Path.Combine(t.StateDirectory, "ahead")) : []);
        }
        finally
        {
            await t.DisposeAsync();
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_WithUserStartAheadTimeZero_MakesNoneReady()
    {
        await using var t = TestRunner.Create(o => o with { UserStartAheadTime = TimeSpan.Zero });
        var job = Start(t, "alice", "echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(job, "ready", Ct);
        await t.WaitForSupervisorPoolAsync(Ct);

        Assert.Equal(0, t.Runner.StartsAheadCount);
        Assert.Equal([job.Id.ToString("N")], Directory.GetDirectories(Path.Combine(t.Runner.CgroupRoot, "users", "alice")).Select(Path.GetFileName));
        await job.StopAsync(TimeSpan.Zero, Ct);
    }

    [Fact(Timeout = 30_000)]
    public async Task PrepareThread_RunsAtTheLowestPriority()
    {
        // What it makes is for later starts; right after a start it must not compete with that start's answer.
        await using var t = TestRunner.Create();
        var niceValues = new List<int>();
        foreach (var task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(task, "comm")).StartsWith("JobWorker prep", StringComparison.Ordinal))
                {
                    // Field 19 of stat is the nice value; fields counted after the command name's closing parenthesis.
                    var stat = File.ReadAllText(Path.Combine(task, "stat"));
                    niceValues.Add(int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[16], CultureInfo.InvariantCulture));
                }
            }
            catch (IOException)
            {
                // a thread that ended meanwhile
            }
        }

        Assert.Contains(JobRunner.PrepareThreadNice, niceValues);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(3601)]
    public void Create_UserStartAheadTimeOutOfRange_RefusedNamingTheSetting(int seconds)
    {
        var ex = Assert.Throws<ArgumentException>(() => TestRunner.Create(o => o with { UserStartAheadTime = TimeSpan.FromSeconds(seconds) }));

        Assert.Contains("UserStartAheadTime must be between 0", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A runner that ended without discarding (a crash leaves exactly this: the records, the groups, and supervisors
    /// that exit as their stdin closes) is followed by one that removes the groups; a group whose record of being made
    /// ahead names a recorded job (a crash between a start taking it and that record being forgotten) is the job's and
    /// stays, and so does a group of the same shape that no record names.
    /// </summary>
    [Fact(Timeout = 60_000)]
    public async Task Restart_GroupsMadeAheadLeftBehind_RemovedExceptAJobsAndForeignOnes()
    {
        await using var t = TestRunner.Create();
        var running = Start(t, "alice", "echo", "ready", "sleep", "60");
        await t.WaitForOutputAsync(running, "ready", Ct);
        await WaitForReadyAsync(t, "alice");
        var users = Path.Combine(t.Runner.CgroupRoot, "users");
        var ahead = Path.Combine(t.StateDirectory, "ahead");
        await t.Runner.DisposeAsync();

        // What a crash leaves: a recorded group made ahead (its supervisor gone with the server) ...
        var leftover = Guid.NewGuid().ToString("N");
        Directory.CreateDirectory(Path.Combine(users, "alice", leftover, "job"));
        Directory.CreateDirectory(Path.Combine(users, "alice", leftover, "shim"));
        File.WriteAllText(Path.Combine(ahead, leftover), "alice");

        // ... the record of one a start had already taken (the running job's), of one never made (a crash between the
        // record and the mkdir), and one naming no user group (never written so: only forgotten) ...
        File.WriteAllText(Path.Combine(ahead, running.Id.ToString("N")), "alice");
        File.WriteAllText(Path.Combine(ahead, Guid.NewGuid().ToString("N")), "alice");
        File.WriteAllText(Path.Combine(ahead, Guid.NewGuid().ToString("N")), "..");

        // ... and a group nobody recorded, however much it looks like one.
        var foreign = Path.Combine(users, "alice", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(foreign);
        try
        {
            await t.RestartAsync();

            Assert.False(Directory.Exists(Path.Combine(users, "alice", leftover)), "a recorded group made ahead was left");
            Assert.True(Directory.Exists(foreign), "a group without a record was removed");
            Assert.True(t.Runner.TryGetJob(running.Id, out var again));
            Assert.Equal(JobState.Running, again.Status.State);
            Assert.Empty(Directory.GetFiles(ahead));

            // Removed first, so that alice's group goes with her job.
            TestRunner.KillAndRemove(foreign);
            Assert.Equal(JobState.Stopped, (await again.StopAsync(TimeSpan.Zero, Ct)).State);
        }
        finally
        {
            if (Directory.Exists(foreign))
            {
                TestRunner.KillAndRemove(foreign);
            }
        }
    }

    private static Job Start(TestRunner t, string owner, params string[] args)
        => t.Runner.Start(new JobSpec(TestRunner.TestProcess, args) { Owner = owner });

    /// <summary>
    /// The id and idle supervisor of <paramref name="owner"/>'s start made ready, once the runner holds it (its record
    /// and groups exist, with the supervisor inside, a moment before).
    /// </summary>
    private static async Task<(Guid Id, int Supervisor)> WaitForReadyAsync(TestRunner t, string owner)
    {
        var user = Path.Combine(t.Runner.CgroupRoot, "users", CgroupTree.UserDirectoryName(owner));
        for (var i = 0; i < 500; i++)
        {
            if (t.Runner.StartAheadFor(owner) is { } id)
            {
                var name = id.ToString("N");
                Assert.True(File.Exists(Path.Combine(t.StateDirectory, "ahead", name)), "a start made ready has no record");
                var supervisor = Assert.Single(Processes(Path.Combine(user, name, "shim")));
                return (id, supervisor);
            }

            await Task.Delay(10, Ct);
        }

        throw new InvalidOperationException($"no start was made ready for {owner} within 5 s");
    }

    /// <summary>
    /// Whether the record of the group made ahead for <paramref name="id"/> is gone within 5 s: the runner forgets it on
    /// its prepare thread (at nice 19, after the start, or after the groups are removed), not at once.
    /// </summary>
    private static async Task<bool> RecordForgottenAsync(TestRunner t, Guid id)
    {
        var record = Path.Combine(t.StateDirectory, "ahead", id.ToString("N"));
        for (var i = 0; i < 500 && File.Exists(record); i++)
        {
            await Task.Delay(10, Ct);
        }

        return !File.Exists(record);
    }

    private static List<int> Processes(string cgroup) => new JobCgroup(cgroup).ReadProcesses();

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);

    private static string[] CommandLine(int pid)
        => File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
}
