using System.Runtime.InteropServices;
using System.Text;
using JobWorker.Core.Jobs;
using JobWorker.Core.Processes;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

/// <summary>
/// What a job starts with (docs/security.md, "What a job starts with"): never the server's own rlimits, umask, OOM
/// score, priority, affinity or session keyring. Real jobs, with and without isolation.
/// </summary>
public sealed partial class JobStartStateTests
{
    private const JobIsolation PidMount = JobIsolation.Pid | JobIsolation.Mount;
    private const int SCHED_BATCH = 3;
    private const long SYS_ioprio_set = 251;
    private const long SYS_keyctl = 250;
    private const int IOPRIO_CLASS_IDLE = 3;
    private const long KEYCTL_GET_KEYRING_ID = 0;
    private const long KEYCTL_JOIN_SESSION_KEYRING = 1;
    private const long KEY_SPEC_SESSION_KEYRING = -3;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory(Timeout = 60_000)]
    [InlineData(JobIsolation.None)]
    [InlineData(PidMount)]
    [InlineData(JobIsolation.All)]
    public async Task Start_ServerThreadWithChangedState_JobStartsWithDefaults(JobIsolation isolation)
    {
        // Nice, scheduling policy, I/O priority, affinity and the session keyring are per thread, and the supervisor
        // (so, without a reset, the job) inherits them from the runner's spawner thread: that thread plays a server
        // whose service manager (or an operator) changed all of them. It inherits nice, I/O priority and keyring from
        // the thread that creates the runner; .NET gives new threads the process's affinity and the default policy,
        // so those are set on the spawner thread itself, found by its name and the unusual nice value.
        const int ServerNice = 7;
        var online = ReadCpuList("/sys/devices/system/cpu/online");
        long serverKeyring = 0;
        var t = await OnThreadAsync(() =>
        {
            Assert.Equal(0, SetPriority(0, Gettid(), ServerNice));
            Assert.Equal(0L, Syscall(SYS_ioprio_set, 1, 0, IOPRIO_CLASS_IDLE << 13));
            serverKeyring = Syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0, 0);
            Assert.True(serverKeyring > 0, $"keyctl join failed: {Marshal.GetLastPInvokeError()}");
            return TestRunner.Create();
        });
        await using var runner = t;
        var spawner = Assert.Single(SpawnerThreads(), tid => ThreadNice(tid) == ServerNice);
        var param = 0;
        Assert.Equal(0, SchedSetScheduler(spawner, SCHED_BATCH, ref param));
        if (online.Count > 1)
        {
            var firstCpu = 1UL << online[0];
            Assert.Equal(0, SchedSetAffinity(spawner, sizeof(ulong), ref firstCpu));
        }

        var nobody = UserAccount.Resolve("nobody", "nogroup");

        // oom_score_adj is per process: raising it is always allowed, and harmless for the tests running beside.
        Dictionary<string, string> state;
        var oom = File.ReadAllText("/proc/self/oom_score_adj").Trim();
        File.WriteAllText("/proc/self/oom_score_adj", "100");
        try
        {
            state = await StartStateAsync(t, isolation);
        }
        finally
        {
            File.WriteAllText("/proc/self/oom_score_adj", oom);
        }

        Assert.Equal($"1024:{ServerOpenFilesHardLimit()}", state["nofile"]);
        Assert.Equal("0022", state["umask"]);
        Assert.Equal("0", state["oom_score_adj"]);
        Assert.Equal("0", state["nice"]);
        Assert.Equal("0", state["sched"]);
        Assert.NotEqual(IOPRIO_CLASS_IDLE.ToString(System.Globalization.CultureInfo.InvariantCulture), state["ioprio_class"]);
        Assert.Equal(ExpectedCpus(), ReadCpuListText(state["cpus"]));
        Assert.NotEqual(serverKeyring.ToString(System.Globalization.CultureInfo.InvariantCulture), state["keyring"]);
        Assert.NotEqual(SessionKeyring().ToString(System.Globalization.CultureInfo.InvariantCulture), state["keyring"]);
        Assert.Matches($"^keyring;{nobody.Uid};{nobody.Gid};[0-9a-f]+;_ses$", state["keyring_desc"]);
    }

    [Theory(Timeout = 60_000)]
    [InlineData(JobIsolation.None)]
    [InlineData(PidMount)]
    [InlineData(JobIsolation.All)]
    public async Task Start_ConfiguredStartState_JobSeesConfiguredValues(JobIsolation isolation)
    {
        // A nice value below the server's own (0) needs a privilege the job's user lacks, and the job's user may not
        // write its oom_score_adj at all (a uid change makes /proc/self root's): both are set before the uid change.
        await using var t = TestRunner.Create(o => o with
        {
            StartState = new JobStartState
            {
                OpenFilesSoftLimit = 256,
                OpenFilesHardLimit = 4096,
                Umask = 0b_000_010_111,
                OomScoreAdjust = 300,
                Nice = -3,
            },
        });

        var state = await StartStateAsync(t, isolation);

        Assert.Equal("256:4096", state["nofile"]);
        Assert.Equal("0027", state["umask"]);
        Assert.Equal("300", state["oom_score_adj"]);
        Assert.Equal("-3", state["nice"]);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_OomScoreBelowServers_AppliedWithCapSysResourceElseClearError()
    {
        // Lowering oom_score_adj below the server's own needs CAP_SYS_RESOURCE, which root in a container may lack:
        // with it the job gets the value, without it the start fails saying why (never a job with another value).
        const int CAP_SYS_RESOURCE = 24;
        var effective = File.ReadLines("/proc/self/status").First(l => l.StartsWith("CapEff:", StringComparison.Ordinal))["CapEff:".Length..].Trim();
        var privileged = (Convert.ToUInt64(effective, 16) & (1UL << CAP_SYS_RESOURCE)) != 0;
        var server = int.Parse(File.ReadAllText("/proc/self/oom_score_adj").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        var lower = Math.Max(-1000, server - 100);
        await using var t = TestRunner.Create(o => o with { StartState = new JobStartState { OomScoreAdjust = lower } });

        if (privileged)
        {
            var state = await StartStateAsync(t, JobIsolation.None);
            Assert.Equal(lower.ToString(System.Globalization.CultureInfo.InvariantCulture), state["oom_score_adj"]);
            return;
        }

        var ex = Assert.Throws<JobStartException>(() => t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["exit", "0"])));
        Assert.Equal(JobStartFailure.SpawnFailed, ex.Reason);
        Assert.StartsWith("Setting the job's start state failed at OomScore (/proc/self/oom_score_adj): Permission denied (EACCES). An OomScoreAdjust below the server's own", ex.Message, StringComparison.Ordinal);
        Assert.Empty(t.JobDirectories());
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_HardLimitBelow1024_DefaultSoftLimitIsTheHardLimit()
    {
        await using var t = TestRunner.Create(o => o with { StartState = new JobStartState { OpenFilesHardLimit = 512 } });

        var state = await StartStateAsync(t, JobIsolation.None);

        Assert.Equal("512:512", state["nofile"]);
    }

    [Theory(Timeout = 60_000)]
    [InlineData(JobIsolation.None)]
    [InlineData(PidMount)]
    [InlineData(JobIsolation.All)]
    public async Task Start_TwoRunningJobs_EachHasItsOwnSessionKeyring(JobIsolation isolation)
    {
        await using var t = TestRunner.Create();
        var first = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["start-state", "echo", "ready", "sleep", "30"]) { Isolation = isolation });
        var second = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["start-state", "echo", "ready", "sleep", "30"]) { Isolation = isolation });

        var a = Parse(await t.WaitForOutputAsync(first, "ready", Ct));
        var b = Parse(await t.WaitForOutputAsync(second, "ready", Ct));

        Assert.NotEqual(a["keyring"], b["keyring"]);
        Assert.EndsWith(";_ses", a["keyring_desc"], StringComparison.Ordinal);
        Assert.EndsWith(";_ses", b["keyring_desc"], StringComparison.Ordinal);
        await first.StopAsync(TimeSpan.Zero, Ct);
        await second.StopAsync(TimeSpan.Zero, Ct);
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_IsolatedJobWithGlibcTunables_InitHasEmptyEnvironmentTargetHasIt()
    {
        // The init runs as root and is statically linked: glibc would honour GLIBC_TUNABLES (and LD_*) in its own
        // environment. It must get none; the target gets exactly the job's.
        await using var t = TestRunner.Create();
        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["env", "GLIBC_TUNABLES", "env", "LD_PRELOAD", "echo", "ready", "sleep", "30"])
        {
            Isolation = PidMount,
            Environment = new Dictionary<string, string> { ["GLIBC_TUNABLES"] = "glibc.malloc.perturb=0", ["LD_PRELOAD"] = string.Empty },
        });

        var output = await t.WaitForOutputAsync(job, "ready", Ct);
        var initEnvironment = await File.ReadAllBytesAsync($"/proc/{job.Pid}/environ", Ct);
        var initName = (await File.ReadAllTextAsync($"/proc/{job.Pid}/comm", Ct)).TrimEnd('\n');

        // The init is a copy of the supervisor, not an exec (JW_SPAWN_INIT_IN_PROCESS): it has the supervisor's
        // (empty) environment and its own name.
        Assert.Equal("jobworker-init", initName);
        Assert.Empty(initEnvironment);
        Assert.Equal("GLIBC_TUNABLES=glibc.malloc.perturb=0\nLD_PRELOAD=\nready\n", output);
        await job.StopAsync(TimeSpan.Zero, Ct);
    }

    [Theory(Timeout = 60_000)]
    [InlineData(JobIsolation.None)]
    [InlineData(PidMount)]
    public async Task Start_JobEnvironment_NotInAnyRootProcessCommandLine(JobIsolation isolation)
    {
        // Every user may read /proc/<pid>/cmdline (unlike environ): a job's environment (secrets) must not be in the
        // supervisor's or the init's arguments.
        await using var t = TestRunner.Create();
        var secret = "secret-" + Guid.NewGuid().ToString("N");
        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["env", "TOKEN", "sleep", "30"])
        {
            Isolation = isolation,
            Environment = new Dictionary<string, string> { ["TOKEN"] = secret },
        });

        await t.WaitForOutputAsync(job, "TOKEN=" + secret, Ct);
        var shimGroup = Path.Combine(Path.GetDirectoryName(job.CgroupPath)!, "shim");
        var shimPid = int.Parse((await File.ReadAllTextAsync(Path.Combine(shimGroup, "cgroup.procs"), Ct)).Trim(), System.Globalization.CultureInfo.InvariantCulture);

        foreach (var pid in new[] { shimPid, job.Pid })
        {
            var commandLine = Encoding.UTF8.GetString(await File.ReadAllBytesAsync($"/proc/{pid}/cmdline", Ct));
            Assert.DoesNotContain(secret, commandLine, StringComparison.Ordinal);
        }

        Assert.StartsWith("jobworker-shim\0", Encoding.UTF8.GetString(await File.ReadAllBytesAsync($"/proc/{shimPid}/cmdline", Ct)), StringComparison.Ordinal);
        await job.StopAsync(TimeSpan.Zero, Ct);
    }

    public static TheoryData<string, JobStartState> InvalidStates => new()
    {
        { "OpenFilesSoftLimit must be positive", new JobStartState { OpenFilesSoftLimit = 0 } },
        { "OpenFilesSoftLimit (2048) is above StartState.OpenFilesHardLimit (1024)", new JobStartState { OpenFilesSoftLimit = 2048, OpenFilesHardLimit = 1024 } },
        { "OpenFilesHardLimit must be between 1 and fs.nr_open", new JobStartState { OpenFilesHardLimit = long.MaxValue } },
        { "Umask must be between 0 and 0777 (octal), not 512 (octal 1000)", new JobStartState { Umask = 512 } },
        { "OomScoreAdjust must be between -1000 and 1000, not 1001", new JobStartState { OomScoreAdjust = 1001 } },
        { "Nice must be between -20 and 19, not -21", new JobStartState { Nice = -21 } },
    };

    [Theory(Timeout = 30_000)]
    [MemberData(nameof(InvalidStates))]
    public void Create_InvalidStartState_RefusedNamingTheSetting(string expected, JobStartState state)
    {
        var ex = Assert.Throws<ArgumentException>(() => TestRunner.Create(o => o with { StartState = state }));

        Assert.Contains("StartState." + expected, ex.Message, StringComparison.Ordinal);
    }

    private static async Task<Dictionary<string, string>> StartStateAsync(TestRunner t, JobIsolation isolation)
    {
        var job = t.Runner.Start(new JobSpec(TestRunner.TestProcess, ["start-state"]) { Isolation = isolation });
        var status = await job.Completion.WaitAsync(Ct);
        Assert.Equal(JobState.Exited, status.State);
        return Parse(t.Output(job));
    }

    private static Dictionary<string, string> Parse(string output)
        => output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(line => line.Contains('=', StringComparison.Ordinal))
            .Select(line => line.Split('=', 2))
            .ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);

    /// <summary>Runs <paramref name="create"/> on a thread of its own that ends afterwards.</summary>
    private static Task<TestRunner> OnThreadAsync(Func<TestRunner> create)
    {
        var done = new TaskCompletionSource<TestRunner>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                done.SetResult(create());
            }
            catch (Exception ex)
            {
                done.SetException(ex);
            }
        });
        thread.Start();
        return done.Task;
    }

    /// <summary>Threads of this process named like a runner's spawner thread ("JobWorker spawner", cut to 15 bytes).</summary>
    private static IEnumerable<int> SpawnerThreads()
    {
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            string comm;
            try
            {
                comm = File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n');
            }
            catch (IOException)
            {
                continue;
            }

            if ("JobWorker spawner".StartsWith(comm, StringComparison.Ordinal) && comm.Length >= 9)
            {
                yield return int.Parse(Path.GetFileName(task), System.Globalization.CultureInfo.InvariantCulture);
            }
        }
    }

    /// <summary>Field 19 of /proc/self/task/TID/stat (after the parenthesised name), or int.MinValue when gone.</summary>
    private static int ThreadNice(int tid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/self/task/{tid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[16], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return int.MinValue;
        }
    }

    private static ulong ServerOpenFilesHardLimit()
    {
        var line = File.ReadLines("/proc/self/limits").First(l => l.StartsWith("Max open files", StringComparison.Ordinal));
        return ulong.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[4], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static long SessionKeyring() => Syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);

    /// <summary>
    /// The CPUs a job's cpuset allows: the online CPUs, narrowed by whatever cpuset this process is in, as the kernel
    /// reports it for the main thread (whose affinity the tests never change).
    /// </summary>
    private static List<int> ExpectedCpus()
    {
        var cpus = ReadCpuList("/sys/devices/system/cpu/online");
        var allowed = File.ReadLines($"/proc/{Environment.ProcessId}/status").First(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal));
        return [.. cpus.Intersect(ReadCpuListText(allowed["Cpus_allowed_list:".Length..].Trim()))];
    }

    private static List<int> ReadCpuList(string path) => ReadCpuListText(File.ReadAllText(path).Trim());

    private static List<int> ReadCpuListText(string list)
    {
        var cpus = new List<int>();
        foreach (var part in list.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var range = part.Split('-');
            var first = int.Parse(range[0], System.Globalization.CultureInfo.InvariantCulture);
            var last = range.Length > 1 ? int.Parse(range[1], System.Globalization.CultureInfo.InvariantCulture) : first;
            for (var cpu = first; cpu <= last; cpu++)
            {
                cpus.Add(cpu);
            }
        }

        return cpus;
    }

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int Gettid();

    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static partial int SetPriority(int which, int who, int prio);

    [LibraryImport("libc", EntryPoint = "sched_setscheduler", SetLastError = true)]
    private static partial int SchedSetScheduler(int pid, int policy, ref int param);

    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    private static partial int SchedSetAffinity(int pid, nuint size, ref ulong mask);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long a, long b, long c);
}
