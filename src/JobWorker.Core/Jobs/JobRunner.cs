using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Diagnostics;
using JobWorker.Core.Output;
using JobWorker.Core.Processes;
using JobWorker.Core.State;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Jobs;

/// <summary>
/// Starts and tracks jobs. Each job runs under its own supervisor and is recorded in the state directory, so jobs
/// outlive the runner: creating a runner on the same state directory re-attaches to them, and disposing one leaves
/// them running (<see cref="StopAllAsync"/> stops them). See docs/design-durability.md.
/// </summary>
/// <remarks>
/// Threads: one spawner thread, one epoll thread and one that makes supervisors and job directories ahead, for all
/// jobs; the rest runs on the thread pool. All members are thread-safe.
/// </remarks>
public sealed class JobRunner : IAsyncDisposable
{
    /// <summary>PATH of a job unless its spec sets one (Debian's default for root-less login shells plus sbin).</summary>
    internal const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    private readonly ConcurrentDictionary<Guid, Job> _jobs = new();
    private readonly JobOrder _order = new();
    private readonly CgroupTree _tree;
    private readonly ProcessSpawner _spawner;
    private SupervisorPool? _supervisors;
    private UserStartsAhead? _startsAhead;
    private readonly object _prepareLock = new();
    private bool _prepareRequested;
    private Thread? _preparer;
    private readonly SafeFileHandle _devNull;
    private readonly ILogger _logger;
    private int _disposed;
    private volatile AccountCache? _account;

    private const long DefaultOpenFilesSoftLimit = 1024;

    private readonly ProcessStartState _startState;

    private readonly OwnerIdentities? _identities;
    private readonly UserPlans _userPlans;

    private JobRunner(JobRunnerOptions options, ProcessStartState startState, UserPlans userPlans, CgroupTree tree, IJobStore store, OwnerIdentities? identities)
    {
        Options = options;
        _identities = identities;
        _userPlans = userPlans;
        _startState = startState;
        _tree = tree;
        Store = store;
        _logger = options.Logger ?? NullLogger.Instance;
        _devNull = File.OpenHandle("/dev/null", FileMode.Open, FileAccess.Read);
        Loop = new EventLoop(ex => BackgroundError?.Invoke(this, new JobBackgroundErrorEventArgs(Guid.Empty, "handling an event", ex)));
        CgroupWatcher = new CgroupEventsWatcher(Loop);
        LogWatcher = new LogWatcher(Loop);
        _spawner = new ProcessSpawner();
    }

    /// <summary>The options the runner was created with.</summary>
    public JobRunnerOptions Options { get; }

    /// <summary>The cgroup directory job groups are created in.</summary>
    public string CgroupRoot => _tree.Root;

    /// <summary>Whether <see cref="DisposeAsync"/> has been called (the runner detached from its jobs).</summary>
    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>How many supervisors are started ahead of their jobs now (see <see cref="SupervisorPool"/>).</summary>
    internal int IdleSupervisors => _supervisors?.IdleCount ?? 0;

    /// <summary>How many users have a start made ready now (for tests).</summary>
    internal int StartsAheadCount => _startsAhead?.ReadyCount ?? 0;

    /// <summary>The id <paramref name="owner"/>'s next job gets from its start made ready, or null (for tests).</summary>
    internal Guid? StartAheadFor(string? owner) => _startsAhead?.ReadyId(owner);

    /// <summary>
    /// Discards every user's start made ready, waiting for one being made (for tests that check that nothing of their
    /// jobs is left in the cgroup root); later starts make them again.
    /// </summary>
    internal void DiscardStartsAhead() => _startsAhead?.Clear();

    /// <summary>The pids of the supervisors started ahead (for tests).</summary>
    internal int[] IdleSupervisorPids() => _supervisors?.IdlePids() ?? [];

    internal EventLoop Loop { get; }

    internal CgroupEventsWatcher CgroupWatcher { get; }

    internal LogWatcher LogWatcher { get; }

    internal IJobStore Store { get; }

    /// <summary>Errors of background work (draining, cleanup) that have no caller to throw to.</summary>
    public event EventHandler<JobBackgroundErrorEventArgs>? BackgroundError;

    /// <summary>
    /// Creates a runner: locks its state directory and cgroup root (a second runner on either is refused), then
    /// re-attaches to the jobs recorded there: running ones are followed again, ones that ended while no runner
    /// ran get their recorded exit status. Every reconciliation is logged.
    /// </summary>
    /// <exception cref="ArgumentException">An option is invalid; the message names it.</exception>
    /// <exception cref="JobWorkerException">cgroup v2 is missing, the runner's subtree cannot be created, the state
    /// directory or cgroup root is in use by another server, or the state directory has a newer format.</exception>
    public static JobRunner Create(JobRunnerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        var startState = ResolveStartState(options);
        var userPlans = UserPlans.Create(options);
        // The cgroup root first: a host that cannot run jobs at all is refused before a state directory exists.
        var tree = CgroupTree.Open(options);
        FileJobStore? store = null;
        try
        {
            userPlans.CheckControllers(tree);
            store = FileJobStore.Open(options.StateDirectory);
            var identities = options.Identity.Mode == JobIdentityMode.PerOwner ? OwnerIdentities.Open(options.Identity, store.Root) : null;
            var runner = new JobRunner(options, startState, userPlans, tree, store, identities);
            runner.Recover();
            if (options.SupervisorPoolSize > 0 && ShimLaunch.ShimPath is { } shimPath)
            {
                runner._supervisors = new SupervisorPool(runner._spawner, shimPath, options.SupervisorPoolSize);
                if (options.UserStartAheadTime > TimeSpan.Zero)
                {
                    runner._startsAhead = new UserStartsAhead(tree, store, runner._spawner, shimPath, userPlans, options.UserStartAheadTime);
                }
            }

            runner._preparer = new Thread(runner.PrepareLoop) { IsBackground = true, Name = "JobWorker prepare-ahead" };
            runner._preparer.Start();
            runner.PrepareAhead();

            return runner;
        }
        catch
        {
            store?.Dispose();
            tree.Dispose();
            throw;
        }
    }

    private static void Validate(JobRunnerOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.StateDirectory) || !Path.IsPathFullyQualified(options.StateDirectory))
        {
            throw new ArgumentException($"StateDirectory must be an absolute path, not '{options.StateDirectory}'.", nameof(options));
        }

        if (options.LogSizeLimitBytes <= 0)
        {
            throw new ArgumentException($"LogSizeLimitBytes must be positive, not {options.LogSizeLimitBytes}.", nameof(options));
        }

        if (options.Identity is null || !Enum.IsDefined(options.Identity.Mode))
        {
            throw new ArgumentException($"Identity must be set and its Mode be PerOwner or SharedAccount, not {options.Identity?.Mode.ToString() ?? "null"}.", nameof(options));
        }

        if (options.Identity.Mode == JobIdentityMode.SharedAccount && (string.IsNullOrWhiteSpace(options.User) || string.IsNullOrWhiteSpace(options.Group)))
        {
            throw new ArgumentException("User and Group must name a user and group (or numeric ids).", nameof(options));
        }

        if (options.SupervisorPoolSize is < 0 or > JobRunnerOptions.MaxSupervisorPoolSize)
        {
            throw new ArgumentException($"SupervisorPoolSize must be between 0 (start each supervisor with its job) and {JobRunnerOptions.MaxSupervisorPoolSize}, not {options.SupervisorPoolSize}.", nameof(options));
        }

        if (options.UserStartAheadTime < TimeSpan.Zero || options.UserStartAheadTime > JobRunnerOptions.MaxUserStartAheadTime)
        {
            throw new ArgumentException($"UserStartAheadTime must be between 0 (make no start ready per user) and {JobRunnerOptions.MaxUserStartAheadTime}, not {options.UserStartAheadTime}.", nameof(options));
        }

        if (options.DefaultStopGrace < TimeSpan.Zero)
        {
            throw new ArgumentException($"DefaultStopGrace must not be negative, not {options.DefaultStopGrace}.", nameof(options));
        }

        foreach (var (name, isolation) in new[] { (nameof(options.DefaultIsolation), options.DefaultIsolation), (nameof(options.RequiredIsolation), options.RequiredIsolation) })
        {
            if ((isolation & ~JobIsolation.All) != 0)
            {
                throw new ArgumentException($"{name} {isolation} has unknown flags; use a combination of Pid, Mount, Network, Ipc and Uts.", nameof(options));
            }
        }

        foreach (var (name, value) in new[] { (nameof(options.ServerMemoryMinBytes), options.ServerMemoryMinBytes), (nameof(options.ServerMemoryLowBytes), options.ServerMemoryLowBytes) })
        {
            if (value is { } bytes && (bytes < 0 || !options.UseDelegatedCgroup))
            {
                throw new ArgumentException(
                    bytes < 0
                        ? $"{name} must not be negative, not {bytes}."
                        : $"{name} protects the server's own cgroup, which exists only with UseDelegatedCgroup; without it, protect the server where it runs (systemd: MemoryMin= and OOMScoreAdjust= in its unit).",
                    nameof(options));
            }
        }
    }

    /// <summary>
    /// Checks the start state against the kernel's bounds and fills in the server's hard RLIMIT_NOFILE when none is
    /// configured.
    /// </summary>
    private static ProcessStartState ResolveStartState(JobRunnerOptions options)
    {
        var state = options.StartState
            ?? throw new ArgumentException("StartState must not be null; use new JobStartState() for the defaults.", nameof(options));

        const string Prefix = "StartState.";
        if (Interop.Sys.GetRlimit(Interop.Sys.RLIMIT_NOFILE, out var server) != 0)
        {
            throw new JobWorkerException($"Cannot read the server's RLIMIT_NOFILE: {Interop.Describe(System.Runtime.InteropServices.Marshal.GetLastPInvokeError())}.");
        }

        var nrOpen = long.Parse(File.ReadAllText("/proc/sys/fs/nr_open").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        var hard = state.OpenFilesHardLimit ?? (long)Math.Min(server.Maximum, (ulong)nrOpen);
        var hardName = state.OpenFilesHardLimit is null ? $"the server's hard limit ({hard}; set {Prefix}OpenFilesHardLimit to choose another)" : $"{Prefix}OpenFilesHardLimit ({hard})";
        if (state.OpenFilesSoftLimit < 1)
        {
            throw new ArgumentException($"{Prefix}OpenFilesSoftLimit must be positive, not {state.OpenFilesSoftLimit}.", nameof(options));
        }

        if (hard < 1 || hard > nrOpen)
        {
            throw new ArgumentException($"{Prefix}OpenFilesHardLimit must be between 1 and fs.nr_open ({nrOpen}, the kernel's largest open-file limit), not {hard}.", nameof(options));
        }

        var soft = state.OpenFilesSoftLimit ?? Math.Min(DefaultOpenFilesSoftLimit, hard);
        if (soft > hard)
        {
            throw new ArgumentException($"{Prefix}OpenFilesSoftLimit ({state.OpenFilesSoftLimit}) is above {hardName}; a soft limit cannot exceed the hard one.", nameof(options));
        }

        if (state.Umask is < 0 or > 0b_111_111_111)
        {
            throw new ArgumentException($"{Prefix}Umask must be between 0 and 0777 (octal), not {state.Umask} (octal {Convert.ToString(state.Umask, 8)}).", nameof(options));
        }

        if (state.OomScoreAdjust is < -1000 or > 1000)
        {
            throw new ArgumentException($"{Prefix}OomScoreAdjust must be between -1000 and 1000, not {state.OomScoreAdjust}.", nameof(options));
        }

        if (state.Nice is < -20 or > 19)
        {
            throw new ArgumentException($"{Prefix}Nice must be between -20 and 19, not {state.Nice}.", nameof(options));
        }

        return new ProcessStartState((ulong)soft, (ulong)hard, (uint)state.Umask, state.OomScoreAdjust, state.Nice);
    }

    /// <summary>The cgroup v2 controllers available to jobs (for example <c>cpu</c>, <c>memory</c>).</summary>
    public IReadOnlySet<string> AvailableControllers => _tree.Controllers;

    /// <summary>All jobs not yet removed.</summary>
    public IReadOnlyCollection<Job> Jobs => [.. _jobs.Values];

    /// <summary>Starts a job. Returns once the program has been exec'd.</summary>
    /// <param name="spec">What to run.</param>
    /// <param name="requestId">A client-chosen id recorded with the job (for idempotent retries), or null.</param>
    /// <param name="requestFingerprint">A digest of the request that carried <paramref name="requestId"/>, recorded
    /// with it so that after a restart a retry can still be told from a reuse of the id; or null.</param>
    /// <exception cref="ArgumentException">The spec is invalid; the message names the field.</exception>
    /// <exception cref="CgroupControllerUnavailableException">A requested limit's controller is missing.</exception>
    /// <exception cref="JobStartException">The program could not be started, or (per-owner identities) the owner has
    /// no account: the id range is exhausted or its mapped account is gone.</exception>
    /// <exception cref="ObjectDisposedException">The runner is disposed.</exception>
    public Job Start(JobSpec spec, string? requestId = null, string? requestFingerprint = null)
    {
        // StartActivity is null when nobody listens: then the start costs one check per phase.
        using var activity = JobTracing.Source.StartActivity(JobTracing.StartActivityName);
        activity?.SetTag(JobTracing.OwnerTag, spec?.Owner);
        var phase = JobTracing.NextPhase(null, "prepare");
        try
        {
            var job = StartPhases(spec!, requestId, requestFingerprint, ref phase);
            activity?.SetTag(JobTracing.JobIdTag, job.Id.ToString("D"));
            return job;
        }
        catch (Exception ex) when (JobTracing.Failed(phase, ex) || JobTracing.Failed(activity, ex))
        {
            throw;
        }
        finally
        {
            phase?.Dispose();
        }
    }

    private Job StartPhases(JobSpec spec, string? requestId, string? requestFingerprint, ref Activity? phase)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        JobSpecValidator.Validate(spec);
        CheckDescriptorReserve();

        // The minimum is added, never a reason to refuse: a client that asks for less (or for none) gets what the
        // runner requires, and the job's spec, record and status say so.
        var isolation = (spec.Isolation ?? Options.DefaultIsolation) | Options.RequiredIsolation;

        // With a PID namespace our init is PID 1 and one of the group's processes for the job's whole life: it is
        // not counted against the job's MaxProcesses (MaxProcesses = 1 could not even start the job's program).
        var plan = CgroupLimitPlan.Create(spec.Limits, extraProcesses: isolation.HasFlag(JobIsolation.Pid) ? 1 : 0);
        foreach (var controller in plan.Controllers)
        {
            if (!_tree.Controllers.Contains(controller))
            {
                throw new CgroupControllerUnavailableException(controller, _tree.ExplainMissing(controller, LimitName(controller)));
            }
        }

        var initPath = isolation == JobIsolation.None ? null : IsolationLaunch.InitPath
            ?? throw new JobStartException(JobStartFailure.IsolationFailed, $"Isolation ({isolation}) needs jobworker-init next to the application ({AppContext.BaseDirectory}); it is built with JobWorker.Core. Rebuild, or start the job without isolation.");
        var shimPath = ShimLaunch.ShimPath
            ?? throw new JobStartException(JobStartFailure.SpawnFailed, $"Jobs need jobworker-shim next to the application ({AppContext.BaseDirectory}); it is built with JobWorker.Core. Rebuild the application.");

        // Before the record: an owner without an id (the range is exhausted) leaves nothing behind.
        var (account, ownerDirectory) = _identities is null ? (ResolveAccount(), null) : _identities.Resolve(spec);
        var environment = BuildEnvironment(spec, account);
        var path = environment.FirstOrDefault(e => e.StartsWith("PATH=", StringComparison.Ordinal))?[5..];
        var candidates = ExecutableSearch.Candidates(spec.Command, path);
        if (candidates.Count == 0)
        {
            throw new JobStartException(JobStartFailure.ExecutableNotFound, $"Executable '{spec.Command}' not found: the job's PATH has no absolute directories.", Interop.ENOENT);
        }

        // The user's start made ready, if any, decides the id: its groups are named for it.
        var ready = _startsAhead?.TryTake(spec.Owner);
        var id = ready?.Id ?? Guid.NewGuid();

        // The record comes first: a cgroup or process of ours never exists without one (a group made ahead has a
        // record of its own until then), so a restarted server knows what is its own, and never touches anything else.
        phase = JobTracing.NextPhase(phase, "record");
        var record = new JobRecord { Id = id, Spec = spec with { Isolation = isolation }, RequestId = requestId, RequestFingerprint = requestFingerprint, CreatedAt = DateTimeOffset.UtcNow };
        try
        {
            Store.Create(record);
        }
        catch (Exception ex)
        {
            if (ready is not null)
            {
                _startsAhead!.Discard(ready);
            }

            if (ex is not IOException)
            {
                throw;
            }

            throw OutOfFileDescriptors(ex)
                ?? new JobStartException(JobStartFailure.StateError, $"Cannot record the job in the state directory: {ex.Message}", ex.HResult, ex);
        }

        JobGroup? group = null;
        IdleSupervisor? readySupervisor = null;
        SafeFileHandle? reportRead = null;
        SafeFileHandle? shimPidfd = null;
        try
        {
            phase = JobTracing.NextPhase(phase, "cgroup");
            try
            {
                // The user's start made ready (groups and a supervisor in them), or the groups made now.
                if (ready is not null)
                {
                    (group, readySupervisor) = (ready.Group, ready.Supervisor);
                    group.Job.Apply(plan);
                }
                else
                {
                    var directory = _tree.CreateJobDirectory(spec.Owner, id.ToString("N"), _userPlans.For(spec.Owner));
                    group = JobGroup.Create(directory, _tree.Controllers, plan);
                }
            }
            catch (IOException ex)
            {
                throw new JobStartException(JobStartFailure.CgroupError, $"Cannot create the job's cgroup: {ex.Message}", ex.HResult, ex);
            }

            phase = JobTracing.NextPhase(phase, "spawn");
            var request = new SpawnRequest
            {
                ExecPaths = candidates,
                Argv = [spec.Command, .. spec.Arguments],
                Environment = environment,
                WorkingDirectory = spec.WorkingDirectory ?? ownerDirectory ?? "/",
                Stdin = _devNull,
                Output = _devNull,
                Credentials = (account.Uid, account.Gid),
                StartState = _startState,
            };
            if (initPath is not null)
            {
                // jobworker-init switches to the job's user and directory itself, after the mounts only root may make.
                request = request with
                {
                    ExecPaths = [initPath],
                    Argv = IsolationLaunch.InitArgv(isolation, account, request.WorkingDirectory!, Store.Root, candidates, request.Argv),
                    WorkingDirectory = null,
                    Credentials = null,
                    NamespaceFlags = IsolationLaunch.NamespaceFlags(isolation),
                    UseInit = true,
                };
            }

            // The supervisor runs the request; we run the supervisor: root, in its own group and session, with no
            // death signal (it must outlive us), and an empty environment; the job's arrives on its stdin. One
            // started ahead (the pool) saves the start its exec; without one, it is started now.
            var shimArgv = ShimLaunch.Argv(request, Store.JobDirectory(id), group.Job.Path, Options.LogSizeLimitBytes, Options.OutputEofTimeout);
            Interop.Spawn.ShimReport report;
            var pooledSupervisor = true;
            var launched = readySupervisor is null
                ? _supervisors?.TryLaunch(group.Shim.Path, shimArgv, request.Environment)
                : readySupervisor.TryLaunch(string.Empty, shimArgv, request.Environment);
            readySupervisor = null;
            if (launched is not { } pooled || !SupervisorPool.TryHandOver(pooled, out report, out shimPidfd))
            {
                pooledSupervisor = false;
                (shimPidfd, reportRead) = StartSupervisor(group, shimPath, shimArgv, request.Environment);
                report = ShimLaunch.ReadReport(reportRead);
            }

            phase?.SetTag(JobTracing.PooledSupervisorTag, pooledSupervisor);
            if (report.Step != 0)
            {
                // The supervisor exits right after a failed report: reap it so no zombie stays behind.
                _ = Interop.Spawn.PidfdWait(shimPidfd, nohang: 0, out var endKind, out var endCode);
                var failure = new SpawnResult(-1, null, (Interop.Spawn.Step)report.Step, report.Error, report.UsedClone3 != 0);
                throw failure.FailedStep switch
                {
                    Interop.Spawn.Step.ShimState or Interop.Spawn.Step.ShimLog
                        => new JobStartException(JobStartFailure.StateError, $"The job's supervisor cannot write to {Store.JobDirectory(id)} ({failure.FailedStep}): {Interop.Describe(report.Error)}.", report.Error),
                    // Killed, say, or out of memory: whatever the job had begun dies with it (its death signal) and the
                    // group is killed below.
                    Interop.Spawn.Step.ShimLost => new JobStartException(
                        JobStartFailure.SupervisorLost,
                        $"The job's supervisor{(report.ShimPid > 0 ? $" (pid {report.ShimPid})" : "")} ended before it reported whether the job started ({HowItEnded(endKind, endCode)}); the start was undone.",
                        report.Error),
                    _ => SpawnFailure.ToException(failure, spec, account),
                };
            }

            var log = new OutputLog(Store.LogPath(id), Options.LogSizeLimitBytes, LogWatcher);
            var startedAt = DateTimeOffset.UnixEpoch.AddTicks(report.StartedAtNs / 100);
            var job = new Job(this, record, group, log, report.Pid, startedAt, shimPidfd, shimIsChild: true);
            Track(job);
            job.Watch();
            _startsAhead?.NoteStart(spec.Owner);
            return job;
        }
        catch (Exception ex)
        {
            // A supervisor made ready and never launched (the job's limits failed) is still waiting: end it first.
            readySupervisor?.End(kill: false);
            if (group is not null)
            {
                group.Job.Kill();
                group.TryRemove();
            }

            _tree.RemoveUserGroupIfEmpty(spec.Owner);

            shimPidfd?.Dispose();
            Untrack(id);
            TryDelete(id);
            if (OutOfFileDescriptors(ex) is { } exhausted)
            {
                throw exhausted;
            }

            throw;
        }
        finally
        {
            reportRead?.Dispose();
            PrepareAhead();
        }
    }

    /// <summary>
    /// Replaces what a start took from what is made ahead (supervisors, job directories), on <see cref="PrepareLoop"/>'s
    /// thread: after the start, so that the work never competes with the start itself.
    /// </summary>
    private void PrepareAhead()
    {
        lock (_prepareLock)
        {
            _prepareRequested = true;
            Monitor.Pulse(_prepareLock);
        }
    }

    /// <summary>The nice value of <see cref="PrepareLoop"/>'s thread.</summary>
    internal const int PrepareThreadNice = 19;

    /// <summary>
    /// The thread that makes up for what starts take: it blocks (a supervisor's fork and exec waits for the spawner
    /// thread, a directory for the disk), and on the thread pool it held up the calls waiting for a thread (StartJob's
    /// own answer came about 0.6 ms later, docs/benchmarks-durability.md).
    /// </summary>
    private void PrepareLoop()
    {
        // The lowest priority (this thread alone): what it makes is for later starts, and it starts right after a start,
        // while that start's answer is still being sent: at nice 0 it delayed the answer by about 0.3 ms
        // (docs/benchmarks-durability.md). Best effort; the supervisors it has the spawner start keep nice 0.
        _ = Interop.Sys.SetPriority(Interop.Sys.PRIO_PROCESS, (uint)Interop.Sys.GetTid(), PrepareThreadNice);

        // When a user's start made ready is next due to be discarded (null: none is kept).
        TimeSpan? due = null;
        while (true)
        {
            lock (_prepareLock)
            {
                while (!_prepareRequested)
                {
                    if (due is null)
                    {
                        Monitor.Wait(_prepareLock);
                    }
                    else if (!Monitor.Wait(_prepareLock, due.Value))
                    {
                        break;
                    }
                }

                _prepareRequested = false;
            }

            if (Volatile.Read(ref _disposed) != 0)
            {
                return;
            }

            try
            {
                _supervisors?.Refill();
                Store.PrepareAhead();
                due = _startsAhead?.Prepare();
            }
            catch (Exception ex)
            {
                // Both are best effort (a start without one does the work itself); this thread must not die.
                BackgroundError?.Invoke(this, new JobBackgroundErrorEventArgs(Guid.Empty, "making supervisors and job directories ahead", ex));
            }
        }
    }

    /// <summary>A process's end as <see cref="Interop.Spawn.PidfdWait"/> gives it (kind 1 exited, 2 signaled).</summary>
    private static string HowItEnded(int kind, int code)
        => kind switch { 1 => $"exit code {code}", 2 => $"signal {code}", _ => "unknown status" };

    /// <summary>
    /// Starts the job's supervisor now (none was started ahead): root, in the job's shim group, with no death signal
    /// (it must outlive us) and an empty environment; the job's arrives on its stdin. Returns its pidfd and the read
    /// end of its report pipe.
    /// </summary>
    private (SafeFileHandle Pidfd, SafeFileHandle Report) StartSupervisor(JobGroup group, string shimPath, List<string> shimArgv, IReadOnlyList<string> environment)
    {
        var (reportRead, reportWrite) = Interop.Io.CreatePipe();
        SpawnResult result;
        using (reportWrite)
        using (var shimCgroup = OpenCgroup(group.Shim))
        using (var jobEnvironment = ShimLaunch.EnvironmentFile(environment))
        {
            // Only the supervisor may hold the write end once this returns, or a supervisor that dies early would
            // never read as EOF.
            result = _spawner.Spawn(new SpawnRequest
            {
                ExecPaths = [shimPath],
                Argv = shimArgv,
                Environment = [],
                Stdin = jobEnvironment,
                Output = reportWrite,
                Cgroup = shimCgroup,
                ParentDeathSignal = 0,
            });
        }

        if (!result.Succeeded)
        {
            reportRead.Dispose();
            throw new JobStartException(
                JobStartFailure.SpawnFailed,
                result.Errno == Interop.EAGAIN && result.FailedStep == Interop.Spawn.Step.Clone
                    ? SpawnFailure.ProcessLimitReached(Interop.Describe(result.Errno))
                    : $"Cannot start the job's supervisor ({shimPath}): {Interop.Describe(result.Errno)} at step {result.FailedStep}.",
                result.Errno);
        }

        return (result.Pidfd!, reportRead);
    }

    /// <summary>
    /// A start that failed because the server has no file descriptor left (EMFILE, or ENFILE for the whole system):
    /// said as such, naming the limit, so the server can answer "resource exhausted" with the fix.
    /// </summary>
    /// <summary>
    /// Descriptors a start leaves to the server itself. Each running job holds one (its supervisor's pidfd); the
    /// rest of the server needs its own: .NET keeps every loaded assembly open (about 240 descriptors for the
    /// server), connections and streams take more, and a runtime that meets EMFILE while it loads an assembly or
    /// maps code fails with "Out of memory." instead of an error a caller can handle.
    /// </summary>
    internal const int DescriptorReserve = 512;

    private void CheckDescriptorReserve()
    {
        if (Interop.Sys.GetRlimit(Interop.Sys.RLIMIT_NOFILE, out var limit) != 0 || limit.Current > int.MaxValue)
        {
            return;
        }

        // The event loop holds each running job's supervisor pidfd: counted there in O(1), not by walking every job
        // (ended ones included) on each start.
        var held = Loop.Count;
        if (held + DescriptorReserve >= (long)limit.Current)
        {
            throw new JobStartException(
                JobStartFailure.SpawnFailed,
                $"The server has no file descriptor left for another job: RLIMIT_NOFILE is {limit.Current}, running jobs and their output watches hold {held}, and {DescriptorReserve} are kept for the server itself. Raise the limit (systemd LimitNOFILE=, see docs/operations.md) or wait for jobs to end.",
                Interop.EMFILE);
        }
    }

    private static JobStartException? OutOfFileDescriptors(Exception exception)
    {
        var errno = exception switch
        {
            JobStartException start => start.Errno,
            IOException io => io.HResult,
            _ => 0,
        };
        if (errno is not (Interop.EMFILE or Interop.ENFILE))
        {
            return null;
        }

        var limit = File.ReadLines("/proc/self/limits").FirstOrDefault(l => l.StartsWith("Max open files", StringComparison.Ordinal))?["Max open files".Length..].Trim();
        var message = errno == Interop.EMFILE
            ? $"The server has no file descriptor left for another job (RLIMIT_NOFILE: {limit}; each running job holds one). Raise the limit (systemd LimitNOFILE=, see docs/operations.md) or wait for jobs to end."
            : "The system has no file descriptor left (fs.file-max reached); wait for jobs to end or raise fs.file-max.";
        return new JobStartException(JobStartFailure.SpawnFailed, message, errno, exception);
    }

    private void TryDelete(Guid id)
    {
        try
        {
            Store.Delete(id);
        }
        catch (IOException ex)
        {
            BackgroundError?.Invoke(this, new JobBackgroundErrorEventArgs(id, "removing the record of a job that did not start", ex));
        }
    }

    /// <summary>
    /// Re-attaches to every recorded job (docs/design-durability.md, "Finding a job again"), and leaves everything
    /// it has no record of alone.
    /// </summary>
    private void Recover()
    {
        var contents = Store.Load();
        // Jobs whose records cannot be read count too: a group named for one of them is left alone.
        var recorded = contents.Records.Select(r => r.Id).ToHashSet();
        foreach (var problem in contents.Problems)
        {
            if (Guid.TryParseExact(Path.GetFileName(problem.Directory), "N", out var id))
            {
                recorded.Add(id);
            }
        }

        UserStartsAhead.RemoveLeftovers(_tree, Store, recorded, _logger);
        foreach (var problem in contents.Problems)
        {
            RunnerLog.RecordUnreadable(_logger, problem.Directory, problem.Reason);
        }

        var known = new HashSet<string>(StringComparer.Ordinal);
        var owners = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var record in contents.Records)
        {
            var group = FindGroup(record);
            known.Add(group.Path);
            owners[CgroupTree.UserDirectoryName(record.Spec.Owner)] = record.Spec.Owner;
            if (record.Final is not null)
            {
                var ended = new Job(this, record, group, new OutputLog(Store.LogPath(record.Id), Options.LogSizeLimitBytes, watcher: null), record.Final.Pid, record.Final.StartedAt, null, shimIsChild: false);
                Track(ended);
                if (group.Exists)
                {
                    // Ended and recorded, but the server stopped before removing the groups: ours to remove.
                    RunnerLog.RemovedLeftoverGroup(_logger, record.Id, group.Path);
                    group.Job.Kill();
                    group.TryRemove();
                }

                continue;
            }

            ShimStatus? shim = null;
            try
            {
                shim = Store.ReadShimStatus(record.Id);
            }
            catch (Exception ex) when (ex is IOException or FormatException or JobWorkerException)
            {
                RunnerLog.RecordUnreadable(_logger, Store.ShimStatusPath(record.Id), ex.Message);
            }

            var pidfd = AttachShim(group);
            var log = new OutputLog(Store.LogPath(record.Id), Options.LogSizeLimitBytes, LogWatcher);
            var job = new Job(this, record, group, log, shim?.Pid ?? 0, shim?.StartedAt ?? record.CreatedAt, pidfd, shimIsChild: false);
            Track(job);
            if (pidfd is not null)
            {
                RunnerLog.Reattached(_logger, record.Id, job.Pid);
                job.Watch();
                job.ResumeStop();
            }
            else
            {
                if (shim?.HasEnded == true)
                {
                    RunnerLog.EndedWhileAway(_logger, record.Id);
                }
                else
                {
                    RunnerLog.SupervisorLost(_logger, record.Id);
                }

                _ = job.FinishAsync();
            }
        }

        foreach (var dir in Directory.EnumerateDirectories(_tree.Root))
        {
            var name = Path.GetFileName(dir);
            if (!known.Contains(dir) && name != CgroupTree.UsersDirectory && !(_tree.Delegated && name == CgroupTree.ServerDirectory))
            {
                RunnerLog.ForeignGroup(_logger, dir, Store.Root);
            }
        }

        RecoverUserGroups(known, owners);
    }

    /// <summary>
    /// The user groups: current aggregate limits for those with jobs (the settings may have changed), empty ones
    /// removed, and any group inside them without a record logged and left alone.
    /// </summary>
    private void RecoverUserGroups(HashSet<string> known, Dictionary<string, string?> owners)
    {
        if (!Directory.Exists(_tree.UsersRoot))
        {
            return;
        }

        foreach (var user in Directory.EnumerateDirectories(_tree.UsersRoot))
        {
            List<string> jobs;
            try
            {
                jobs = [.. Directory.EnumerateDirectories(user)];
            }
            catch (DirectoryNotFoundException)
            {
                continue; // a job that ended during start-up removed it with its last group
            }

            foreach (var dir in jobs.Where(d => !known.Contains(d)))
            {
                RunnerLog.ForeignGroup(_logger, dir, Store.Root);
            }

            if (jobs.Count == 0)
            {
                _ = _tree.TryRemoveEmptyGroup(user);
            }
            else if (owners.TryGetValue(Path.GetFileName(user), out var owner))
            {
                try
                {
                    _tree.ApplyUserLimits(user, _userPlans.For(owner));
                }
                catch (IOException ex)
                {
                    RunnerLog.UserLimitsNotApplied(_logger, user, ex.Message);
                }
            }
        }

        _ = _tree.TryRemoveEmptyGroup(_tree.UsersRoot);
    }

    /// <summary>
    /// A recorded job's groups: in its user's group, or directly under the root for a job started by a server from
    /// before user groups (it keeps that place until it ends).
    /// </summary>
    private JobGroup FindGroup(JobRecord record)
    {
        var name = record.Id.ToString("N");
        var path = Path.Combine(_tree.UserGroupPath(record.Spec.Owner), name);
        if (!Directory.Exists(path))
        {
            var flat = Path.Combine(_tree.Root, name);
            if (Directory.Exists(flat))
            {
                return new JobGroup(flat);
            }
        }

        return new JobGroup(path);
    }

    /// <summary>Called once a job's groups are gone: its user's group goes too when it was the user's last job.</summary>
    internal void OnGroupRemoved(string? owner) => _tree.RemoveUserGroupIfEmpty(owner);

    /// <summary>
    /// A pidfd for the job's supervisor, proven to be it: the pid read from the supervisor's group is opened as a
    /// pidfd, then the group is read again. Only the supervisor is ever placed there, so a pid still listed after
    /// the pidfd exists is the supervisor (a bare pid could have been reused). Null when it is gone.
    /// </summary>
    private static SafeFileHandle? AttachShim(JobGroup group)
    {
        if (group.FindShim() is not int pid)
        {
            return null;
        }

        var fd = Interop.Spawn.PidfdOpen(pid);
        if (fd < 0)
        {
            return null;
        }

        var pidfd = new SafeFileHandle(fd, ownsHandle: true);
        if (group.FindShim() == pid)
        {
            return pidfd;
        }

        pidfd.Dispose();
        return null;
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

    /// <summary>
    /// Up to <paramref name="count"/> jobs that match <paramref name="filter"/>, in creation order (then id), starting
    /// after <paramref name="after"/> or at the first job. Costs O(log n) plus the jobs looked at.
    /// </summary>
    /// <param name="after">Where the previous page ended, or null for the first page.</param>
    /// <param name="count">The most jobs to return.</param>
    /// <param name="filter">Called under the listing's lock for each job in order: it must be cheap and must not
    /// call back into the runner (read <see cref="Job.CurrentState"/>, not <see cref="Job.Status"/>).</param>
    public IReadOnlyList<Job> ListJobs(JobListPosition? after, int count, Func<Job, bool>? filter = null)
        => _order.After(after, count, filter);

    /// <summary>Finds a job by id.</summary>
    public bool TryGetJob(Guid id, [NotNullWhen(true)] out Job? job) => _jobs.TryGetValue(id, out job);

    /// <summary>Forgets an ended job: deletes its record and its log.</summary>
    /// <remarks>
    /// A job has ended once its final status is published (<see cref="Job.HasEnded"/>): a reader that saw
    /// the final status can always remove the job, even before <see cref="Job.Completion"/>'s continuations ran.
    /// </remarks>
    /// <exception cref="InvalidOperationException">The job is still running.</exception>
    /// <exception cref="IOException">The job's state directory could not be removed.</exception>
    public void Remove(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (!job.HasEnded)
        {
            throw new InvalidOperationException($"Job {job.Id} is still running; stop it first.");
        }

        if (Untrack(job.Id))
        {
            job.Log.Dispose();
            Store.Delete(job.Id);
        }
    }

    internal void ReportBackgroundError(Job job, string operation, Exception exception)
        => BackgroundError?.Invoke(this, new JobBackgroundErrorEventArgs(job.Id, operation, exception));

    /// <summary>Stops every running job within its grace (or <paramref name="grace"/>) and waits until all have ended.</summary>
    public async Task StopAllAsync(TimeSpan? grace = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var stops = _jobs.Values.Where(j => !j.HasEnded).Select(j => j.StopAsync(grace, cancellationToken)).ToArray();
        try
        {
            await Task.WhenAll(stops).ConfigureAwait(false);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            // Each job's end is reported through BackgroundError; the others still stopped.
        }
    }

    /// <summary>
    /// Releases the runner: stops watching, closes every file descriptor and releases the state directory and
    /// cgroup root. Running jobs are left running under their supervisors; a new runner on the same state
    /// directory re-attaches to them. Use <see cref="StopAllAsync"/> first to stop them.
    /// </summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return ValueTask.CompletedTask;
        }

        LogWatcher.Dispose();
        CgroupWatcher.Dispose();
        Loop.Dispose();
        foreach (var job in _jobs.Values)
        {
            job.Detach();
        }

        // The thread that refills uses the pool, the spawner and the store: it ends first.
        PrepareAhead();
        _preparer?.Join();
        _supervisors?.Dispose();
        _startsAhead?.Dispose();
        _spawner.Dispose();
        _devNull.Dispose();
        _tree.Dispose();
        Store.Dispose();
        return ValueTask.CompletedTask;
    }

    private void Track(Job job)
    {
        _jobs[job.Id] = job;
        _order.Add(job);
    }

    private bool Untrack(Guid id)
    {
        if (!_jobs.TryRemove(id, out var job))
        {
            return false;
        }

        _order.Remove(job);
        return true;
    }

    private sealed record AccountCache(UserAccount Account, DateTime Passwd, DateTime Group);
}
