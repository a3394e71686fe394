using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Output;
using JobWorker.Core.Processes;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Jobs;

/// <summary>Starts and tracks jobs. Disposing it stops every job and removes its cgroup subtree.</summary>
/// <remarks>
/// Threads: one spawner thread (the parent-death signal follows it) and one epoll thread for all jobs; the
/// rest runs on the thread pool. All members are thread-safe.
/// </remarks>
public sealed class JobRunner : IAsyncDisposable
{
    /// <summary>PATH of a job unless its spec sets one (Debian's default for root-less login shells plus sbin).</summary>
    internal const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>The output pipe's size: fewer wake-ups per byte and more slack while the drain is scheduled.</summary>
    private const int PipeSize = 1 << 20;

    private readonly ConcurrentDictionary<Guid, Job> _jobs = new();
    private readonly CgroupTree _tree;
    private readonly ProcessSpawner _spawner;
    private readonly SafeFileHandle _devNull;
    private int _disposed;
    private volatile AccountCache? _account;

    private JobRunner(JobRunnerOptions options, CgroupTree tree)
    {
        Options = options;
        _tree = tree;
        _devNull = File.OpenHandle("/dev/null", FileMode.Open, FileAccess.Read);
        Loop = new EventLoop(ex => BackgroundError?.Invoke(this, new JobBackgroundErrorEventArgs(Guid.Empty, "handling an event", ex)));
        CgroupWatcher = new CgroupEventsWatcher(Loop);
        _spawner = new ProcessSpawner();
    }

    /// <summary>The options the runner was created with.</summary>
    public JobRunnerOptions Options { get; }

    /// <summary>The cgroup directory job groups are created in.</summary>
    public string CgroupRoot => _tree.Root;

    internal EventLoop Loop { get; }

    internal CgroupEventsWatcher CgroupWatcher { get; }

    /// <summary>Errors of background work (draining, cleanup) that have no caller to throw to.</summary>
    public event EventHandler<JobBackgroundErrorEventArgs>? BackgroundError;

    /// <summary>Creates a runner: finds cgroup v2, prepares its subtree and log directory, removes stale groups.</summary>
    /// <exception cref="ArgumentException">An option is invalid; the message names it.</exception>
    /// <exception cref="JobWorkerException">cgroup v2 is missing or the runner's subtree cannot be created.</exception>
    public static JobRunner Create(JobRunnerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        var tree = CgroupTree.Open(options);
        try
        {
            // Private: job output may hold secrets. An existing directory keeps its mode (the operator's choice).
            Directory.CreateDirectory(options.LogDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            return new JobRunner(options, tree);
        }
        catch
        {
            tree.Remove();
            throw;
        }
    }

    private static void Validate(JobRunnerOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.LogDirectory) || !Path.IsPathFullyQualified(options.LogDirectory))
        {
            throw new ArgumentException($"LogDirectory must be an absolute path, not '{options.LogDirectory}'.", nameof(options));
        }

        if (options.LogSizeLimitBytes <= 0)
        {
            throw new ArgumentException($"LogSizeLimitBytes must be positive, not {options.LogSizeLimitBytes}.", nameof(options));
        }

        if (string.IsNullOrWhiteSpace(options.User) || string.IsNullOrWhiteSpace(options.Group))
        {
            throw new ArgumentException("User and Group must name a user and group (or numeric ids).", nameof(options));
        }

        if (options.DefaultStopGrace < TimeSpan.Zero)
        {
            throw new ArgumentException($"DefaultStopGrace must not be negative, not {options.DefaultStopGrace}.", nameof(options));
        }
    }

    /// <summary>The cgroup v2 controllers available to jobs (for example <c>cpu</c>, <c>memory</c>).</summary>
    public IReadOnlySet<string> AvailableControllers => _tree.Controllers;

    /// <summary>All jobs not yet removed.</summary>
    public IReadOnlyCollection<Job> Jobs => [.. _jobs.Values];

    /// <summary>Starts a job. Returns once the program has been exec'd.</summary>
    /// <exception cref="ArgumentException">The spec is invalid; the message names the field.</exception>
    /// <exception cref="CgroupControllerUnavailableException">A requested limit's controller is missing.</exception>
    /// <exception cref="JobStartException">The program could not be started.</exception>
    /// <exception cref="ObjectDisposedException">The runner is disposed.</exception>
    public Job Start(JobSpec spec)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        JobSpecValidator.Validate(spec);
        var plan = CgroupLimitPlan.Create(spec.Limits);
        foreach (var controller in plan.Controllers)
        {
            if (!_tree.Controllers.Contains(controller))
            {
                throw new CgroupControllerUnavailableException(controller, _tree.ExplainMissing(controller, LimitName(controller)));
            }
        }

        var isolation = spec.Isolation ?? Options.DefaultIsolation;
        var initPath = isolation == JobIsolation.None ? null : IsolationLaunch.InitPath
            ?? throw new JobStartException(JobStartFailure.IsolationFailed, $"Isolation ({isolation}) needs jobworker-init next to the application ({AppContext.BaseDirectory}); it is built with JobWorker.Core. Rebuild, or start the job without isolation.");

        var account = ResolveAccount();
        var environment = BuildEnvironment(spec, account);
        var path = environment.FirstOrDefault(e => e.StartsWith("PATH=", StringComparison.Ordinal))?[5..];
        var candidates = ExecutableSearch.Candidates(spec.Command, path);
        if (candidates.Count == 0)
        {
            throw new JobStartException(JobStartFailure.ExecutableNotFound, $"Executable '{spec.Command}' not found: the job's PATH has no absolute directories.", Interop.ENOENT);
        }

        var id = Guid.NewGuid();
        JobCgroup cgroup;
        try
        {
            cgroup = JobCgroup.Create(Path.Combine(_tree.Root, id.ToString("N")));
        }
        catch (IOException ex)
        {
            throw new JobStartException(JobStartFailure.CgroupError, $"Cannot create the job's cgroup: {ex.Message}", ex.HResult, ex);
        }

        OutputLog? log = null;
        SafeFileHandle? pipeRead = null;
        SafeFileHandle? pipeWrite = null;
        SafeFileHandle? pidfd = null;
        SafeFileHandle? statusRead = null;
        SafeFileHandle? statusWrite = null;
        try
        {
            try
            {
                cgroup.Apply(plan);
            }
            catch (IOException ex)
            {
                throw new JobStartException(JobStartFailure.CgroupError, $"Cannot apply the job's limits: {ex.Message}", ex.HResult, ex);
            }

            log = OutputLog.Create(Options.LogDirectory, id, Options.LogSizeLimitBytes);
            (pipeRead, pipeWrite) = CreatePipe();

            var request = new SpawnRequest
            {
                ExecPaths = candidates,
                Argv = [spec.Command, .. spec.Arguments],
                Environment = environment,
                WorkingDirectory = spec.WorkingDirectory ?? "/",
                Stdin = _devNull,
                Output = pipeWrite,
                Credentials = (account.Uid, account.Gid),
            };
            if (initPath is not null)
            {
                if (isolation.HasFlag(JobIsolation.Pid))
                {
                    (statusRead, statusWrite) = CreatePipe();
                }

                // jobworker-init switches to the job's user and directory itself, after the mounts only root may make.
                request = request with
                {
                    ExecPaths = [initPath],
                    Argv = IsolationLaunch.InitArgv(isolation, account, request.WorkingDirectory!, Options.LogDirectory, candidates, request.Argv),
                    WorkingDirectory = null,
                    Credentials = null,
                    NamespaceFlags = IsolationLaunch.NamespaceFlags(isolation),
                    UseInit = true,
                    StatusPipe = statusWrite,
                };
            }

            SpawnResult result;
            using (var cgroupFd = OpenCgroup(cgroup))
            {
                result = _spawner.Spawn(request with { Cgroup = cgroupFd });
            }

            // Only the job may hold the write end, or EOF would never come.
            pipeWrite.Dispose();
            statusWrite?.Dispose();
            if (!result.Succeeded)
            {
                throw SpawnFailure.ToException(result, spec, account);
            }

            pidfd = result.Pidfd!;
            // The job's spec records the isolation it really got, so status shows the default's effect too.
            var job = new Job(this, id, spec with { Isolation = isolation }, cgroup, log, result.Pid, pidfd, pipeRead, DateTimeOffset.UtcNow) { InitStatusPipe = statusRead };
            _jobs[id] = job;
            job.Watch();
            return job;
        }
        catch
        {
            pipeWrite?.Dispose();
            pipeRead?.Dispose();
            pidfd?.Dispose();
            statusRead?.Dispose();
            statusWrite?.Dispose();
            if (log is not null)
            {
                log.Dispose();
                log.Delete();
            }

            _jobs.TryRemove(id, out _);
            cgroup.Kill();
            cgroup.TryRemove();
            throw;
        }
    }

    /// <summary>
    /// The job account, re-read only when /etc/passwd or /etc/group changed (parsing them costs ~50 µs per start;
    /// two stats cost ~2 µs), so an account added or removed later is still seen.
    /// </summary>
    private UserAccount ResolveAccount()
    {
        var passwd = File.GetLastWriteTimeUtc("/etc/passwd");
        var group = File.GetLastWriteTimeUtc("/etc/group");
        var cached = _account;
        if (cached is not null && cached.Passwd == passwd && cached.Group == group)
        {
            return cached.Account;
        }

        var account = UserAccount.Resolve(Options.User, Options.Group);
        _account = new AccountCache(account, passwd, group);
        return account;
    }

    private static SafeFileHandle OpenCgroup(JobCgroup cgroup)
    {
        try
        {
            return cgroup.OpenDirectory();
        }
        catch (IOException ex)
        {
            throw new JobStartException(JobStartFailure.CgroupError, ex.Message, ex.HResult, ex);
        }
    }

    private static unsafe (SafeFileHandle Read, SafeFileHandle Write) CreatePipe()
    {
        var fds = stackalloc int[2];
        var r = Interop.Spawn.Pipe(fds, PipeSize);
        if (r < 0)
        {
            throw new JobStartException(JobStartFailure.SpawnFailed, $"Cannot create the output pipe: {Interop.Describe(-r)}", -r);
        }

        return (new SafeFileHandle(fds[0], ownsHandle: true), new SafeFileHandle(fds[1], ownsHandle: true));
    }

    private static List<string> BuildEnvironment(JobSpec spec, UserAccount account)
    {
        // Explicit and minimal: the server's own environment (secrets, config) never reaches a job.
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = DefaultPath,
            ["HOME"] = account.Home,
            ["LANG"] = "C.UTF-8",
        };
        foreach (var (key, value) in spec.Environment)
        {
            env[key] = value;
        }

        return [.. env.Select(kv => kv.Key + "=" + kv.Value)];
    }

    private static string LimitName(string controller) => controller switch
    {
        "cpu" => "a CPU limit",
        "memory" => "a memory limit",
        "io" => "IO limits",
        "pids" => "a process limit",
        _ => "that limit",
    };

    /// <summary>Finds a job by id.</summary>
    public bool TryGetJob(Guid id, [NotNullWhen(true)] out Job? job) => _jobs.TryGetValue(id, out job);

    /// <summary>Forgets an ended job and deletes its log.</summary>
    /// <remarks>
    /// A job has ended once its final status is published (<see cref="JobStatus.HasEnded"/>): a reader that saw
    /// the final status can always remove the job, even before <see cref="Job.Completion"/>'s continuations ran.
    /// </remarks>
    /// <exception cref="InvalidOperationException">The job is still running.</exception>
    public void Remove(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (!job.HasEnded)
        {
            throw new InvalidOperationException($"Job {job.Id} is still running; stop it first.");
        }

        if (_jobs.TryRemove(job.Id, out _))
        {
            job.Log.Dispose();
            job.Log.Delete();
        }
    }

    internal void ReportBackgroundError(Job job, string operation, Exception exception)
        => BackgroundError?.Invoke(this, new JobBackgroundErrorEventArgs(job.Id, operation, exception));

    /// <summary>Stops all jobs within their grace and removes the runner's cgroup subtree.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        var stops = _jobs.Values.Select(j => j.StopAsync()).ToArray();
        try
        {
            await Task.WhenAll(stops).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Each job's end is reported through BackgroundError; disposal goes on.
        }

        foreach (var job in _jobs.Values)
        {
            job.Log.Dispose();
        }

        CgroupWatcher.Dispose();
        Loop.Dispose();
        _spawner.Dispose();
        _devNull.Dispose();
        _tree.Remove();
    }

    private sealed record AccountCache(UserAccount Account, DateTime Passwd, DateTime Group);
}
