using System.Text;
using JobWorker.Core.Jobs;
using JobWorker.Core.State;

namespace JobWorker.Core.Tests.Infrastructure;

/// <summary>
/// A <see cref="JobRunner"/> with its own cgroup subtree (<c>&lt;cgroup2&gt;/jobworker-test-&lt;random&gt;</c>) and
/// state directory, both removed on dispose (after stopping every job) so tests running in parallel never see each
/// other's groups.
/// </summary>
internal sealed class TestRunner : IAsyncDisposable
{
    private TestRunner(JobRunner runner, string stateDirectory)
    {
        Runner = runner;
        StateDirectory = stateDirectory;
    }

    public JobRunner Runner { get; private set; }

    // A restart whose new runner failed to start left only a disposed one: disposal then cleans up by hand.
    private bool _detached;

    public string StateDirectory { get; }

    /// <summary>The tests' dummy job (tests/JobWorker.TestProcess), built next to the tests.</summary>
    public static string TestProcess { get; } = LocateTestProcess();

    /// <summary>
    /// Every job as nobody: the tests of everything but identities start jobs without an owner. The identity tests
    /// (<c>IdentityTests</c>) choose <see cref="JobIdentityMode.PerOwner"/> with their own directory and id range.
    /// </summary>
    public static JobIdentityOptions SharedAccount { get; } = new() { Mode = JobIdentityMode.SharedAccount };

    public static string CgroupMount { get; } = JobWorker.Core.Cgroups.CgroupMount.FindMountPoint() ?? throw new InvalidOperationException("no cgroup2 mount");

    public static TestRunner Create(Func<JobRunnerOptions, JobRunnerOptions>? configure = null)
    {
        var suffix = Guid.NewGuid().ToString("N")[..12];
        var logs = Path.Combine(Path.GetTempPath(), "jobworker-test-state-" + suffix);
        var options = new JobRunnerOptions
        {
            CgroupRoot = Path.Combine(CgroupMount, "jobworker-test-" + suffix),
            StateDirectory = logs,
            Identity = SharedAccount,
            DefaultStopGrace = TimeSpan.FromSeconds(2),
        };
        options = configure?.Invoke(options) ?? options;
        try
        {
            return new TestRunner(JobRunner.Create(options), options.StateDirectory);
        }
        catch
        {
            if (Directory.Exists(options.StateDirectory))
            {
                Directory.Delete(options.StateDirectory, recursive: true);
            }

            // The cgroup root this test named, if the runner made it before it failed (it is empty then).
            if (options.CgroupRoot is { } root && Directory.Exists(root))
            {
                _ = TryRemoveDirectory(root);
            }

            throw;
        }
    }

    /// <summary>The prefix of the owners' directory roots of <see cref="CreatePerOwner"/>, removed on dispose.</summary>
    private const string UserDirectoryPrefix = "/var/tmp/jobworker-test-users-";

    /// <summary>
    /// A runner with <see cref="JobIdentityMode.PerOwner"/> identities: <paramref name="ids"/> ids from a random place in
    /// systemd's dynamic range (so parallel tests rarely share one), and owners' directories under /var/tmp (outside
    /// /tmp, which mount-isolated jobs do not see), removed on dispose.
    /// </summary>
    public static TestRunner CreatePerOwner(uint ids = 16, Func<JobIdentityOptions, JobIdentityOptions>? identity = null, Func<JobRunnerOptions, JobRunnerOptions>? configure = null)
    {
        var first = JobIdentityOptions.DefaultFirstId + (uint)Random.Shared.Next(0, (int)(JobIdentityOptions.DefaultLastId - JobIdentityOptions.DefaultFirstId - ids));
        var options = new JobIdentityOptions
        {
            FirstId = first,
            LastId = first + ids - 1,
            UserDirectoryRoot = UserDirectoryPrefix + Guid.NewGuid().ToString("N")[..12],
        };
        options = identity?.Invoke(options) ?? options;
        try
        {
            return Create(o => configure?.Invoke(o with { Identity = options }) ?? o with { Identity = options });
        }
        catch
        {
            DeleteUserDirectories(options);
            throw;
        }
    }

    private static void DeleteUserDirectories(JobIdentityOptions options)
    {
        if (options.Mode == JobIdentityMode.PerOwner && options.UserDirectoryRoot.StartsWith(UserDirectoryPrefix, StringComparison.Ordinal) && Directory.Exists(options.UserDirectoryRoot))
        {
            Directory.Delete(options.UserDirectoryRoot, recursive: true);
        }
    }

    public Job Start(params string[] args) => Runner.Start(new JobSpec(TestProcess, args));

    /// <summary>The job's log file.</summary>
    public string LogPath(Job job) => LogPath(job.Id);

    /// <inheritdoc cref="LogPath(Job)"/>
    public string LogPath(Guid id) => Path.Combine(JobDirectory(id), "output.log");

    /// <summary>The job's directory in the state directory (record, log, supervisor status).</summary>
    public string JobDirectory(Guid id) => Path.Combine(StateDirectory, "jobs", id.ToString("N"));

    /// <summary>Every job directory in the state directory (each holds a record, a log and a supervisor status).</summary>
    public IEnumerable<string> JobDirectories()
    {
        var jobs = Path.Combine(StateDirectory, "jobs");
        return Directory.Exists(jobs) ? Directory.EnumerateDirectories(jobs) : [];
    }

    /// <summary>The job's output as stored in its log file.</summary>
    public string Output(Job job) => Encoding.UTF8.GetString(File.ReadAllBytes(LogPath(job)));

    /// <summary>
    /// Disposes the runner, leaving its jobs running, and creates a new one on the same state directory and cgroup
    /// root: what a server restart does.
    /// </summary>
    public async Task RestartAsync(Func<JobRunnerOptions, JobRunnerOptions>? configure = null)
    {
        var options = Runner.Options;
        await Runner.DisposeAsync();
        _detached = true;
        Runner = JobRunner.Create(configure?.Invoke(options) ?? options);
        _detached = false;
    }

    /// <summary>
    /// Waits until the job's log contains <paramref name="text"/> (a readiness marker printed by the test process).
    /// Test-only: it re-reads the log file every 10 ms, bounded by a timeout.
    /// </summary>
    public async Task<string> WaitForOutputAsync(Job job, string text, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(15));
        while (true)
        {
            var output = Output(job);
            if (output.Contains(text, StringComparison.Ordinal))
            {
                return output;
            }

            if (job.Completion.IsCompleted)
            {
                throw new InvalidOperationException($"job ended without printing '{text}'; output: {output}");
            }

            await Task.Delay(10, timeout.Token);
        }
    }

    /// <summary>
    /// Waits until the job's supervisor has recorded how the job ended (the end record of <c>shim.status</c>), for
    /// tests that let a job end while no runner runs. The main process's pid disappearing is not enough: it is gone
    /// (a zombie) before the supervisor reaps it and takes the end time.
    /// </summary>
    public async Task<ShimStatus> WaitForSupervisorEndAsync(Guid id, CancellationToken cancellationToken)
    {
        var path = Path.Combine(JobDirectory(id), "shim.status");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (true)
        {
            // The supervisor reports the start to the runner before it writes its first record.
            var status = File.Exists(path) ? ShimStatus.Parse(File.ReadAllText(path), path) : null;
            if (status?.HasEnded == true)
            {
                return status;
            }

            await Task.Delay(20, timeout.Token);
        }
    }

    /// <summary>Waits until the runner's supervisors started ahead are all there (the pool refills in the background).</summary>
    public async Task WaitForSupervisorPoolAsync(CancellationToken cancellationToken)
    {
        for (var i = 0; i < 1000 && Runner.IdleSupervisors < Runner.Options.SupervisorPoolSize; i++)
        {
            await Task.Delay(10, cancellationToken);
        }

        Assert.Equal(Runner.Options.SupervisorPoolSize, Runner.IdleSupervisors);
    }

    /// <summary>
    /// The groups left in the cgroup root once the runner's starts made ready for its users (groups and an idle
    /// supervisor that hold no job yet, see UserStartsAhead) are discarded.
    /// </summary>
    public string[] GroupsLeft()
    {
        Runner.DiscardStartsAhead();
        return Directory.Exists(Runner.CgroupRoot) ? Directory.GetDirectories(Runner.CgroupRoot) : [];
    }

    /// <summary>Whether a process with <paramref name="pid"/> exists (zombies count as gone).</summary>
    public static bool ProcessExists(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..][0];
            return state != 'Z' && state != 'X';
        }
        catch (IOException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        var root = Runner.CgroupRoot;
        if (!_detached && !Runner.IsDisposed)
        {
            await Runner.StopAllAsync();
        }

        await Runner.DisposeAsync();
        var left = Directory.Exists(root) ? Directory.GetDirectories(root) : [];

        // Whatever happened, nothing of this test may keep running: the subtree is this test's own.
        foreach (var group in left)
        {
            KillAndRemove(group);
        }

        if (Directory.Exists(root))
        {
            _ = Directory.GetDirectories(root).Length == 0 && TryRemoveDirectory(root);
        }

        if (Directory.Exists(StateDirectory))
        {
            Directory.Delete(StateDirectory, recursive: true);
        }

        DeleteUserDirectories(Runner.Options.Identity);

        // A test must not leave its subtree behind: if the runner failed to, fail loudly here.
        if (left.Length > 0 || Directory.Exists(root))
        {
            throw new InvalidOperationException($"cgroup subtree {root} was not removed by the runner (left: {string.Join(", ", left)})");
        }
    }

    /// <summary>Kills everything in a cgroup of this test's own subtree and removes it (children first).</summary>
    public static void KillAndRemove(string group)
    {
        foreach (var child in Directory.GetDirectories(group))
        {
            KillAndRemove(child);
        }

        try
        {
            File.WriteAllText(Path.Combine(group, "cgroup.kill"), "1");
        }
        catch (IOException)
        {
        }

        for (var i = 0; i < 100 && Directory.Exists(group) && !TryRemoveDirectory(group); i++)
        {
            Thread.Sleep(10);
        }
    }

    private static bool TryRemoveDirectory(string path)
    {
        try
        {
            Directory.Delete(path);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    // A job isolated in a mount namespace gets a private, empty /tmp, so a test process built under /tmp (a
    // checkout there, as a CI clone may be) would not exist for it. Such a build runs a copy from /var/tmp
    // instead, removed when the test process exits.
    private static string LocateTestProcess()
    {
        var built = Path.Combine(AppContext.BaseDirectory, "jobworker-testprocess");
        if (!built.StartsWith("/tmp/", StringComparison.Ordinal))
        {
            return built;
        }

        var directory = Path.Combine("/var/tmp", $"jobworker-testprocess-{Environment.ProcessId}");
        Directory.CreateDirectory(directory);
        var copy = Path.Combine(directory, "jobworker-testprocess");
        File.Copy(built, copy, overwrite: true);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(directory, recursive: true);
        return copy;
    }
}
