namespace JobWorker.Core.Jobs;

/// <summary>Settings of a <see cref="JobRunner"/>.</summary>
public sealed record JobRunnerOptions
{
    /// <summary>
    /// The cgroup v2 directory the runner owns and creates job groups in. <see langword="null"/> (the default)
    /// means <c>&lt;cgroup2 mount&gt;/jobworker</c>, with the mount found in <c>/proc/self/mountinfo</c>.
    /// </summary>
    public string? CgroupRoot { get; init; }

    /// <summary>
    /// Use the cgroup the runner's process is in as a delegated subtree (systemd <c>Delegate=yes</c>): the process
    /// moves itself into a leaf and jobs are created as siblings. Overrides <see cref="CgroupRoot"/>.
    /// </summary>
    public bool UseDelegatedCgroup { get; init; }

    /// <summary>
    /// Aggregate limits of every user's cgroup (<c>&lt;root&gt;/users/&lt;user&gt;</c>, which holds all jobs of
    /// <see cref="JobSpec.Owner"/>), unless <see cref="UserLimitsByUser"/> names the user. Default none. A limit whose
    /// controller is missing fails <see cref="JobRunner.Create"/>.
    /// </summary>
    public UserCgroupLimits UserLimits { get; init; } = UserCgroupLimits.None;

    /// <summary>Aggregate limits for particular users (by <see cref="JobSpec.Owner"/>), instead of <see cref="UserLimits"/>.</summary>
    public IReadOnlyDictionary<string, UserCgroupLimits> UserLimitsByUser { get; init; } = new Dictionary<string, UserCgroupLimits>();

    /// <summary>
    /// <c>memory.min</c> of the runner's own cgroup (<c>&lt;root&gt;/server</c>, only with
    /// <see cref="UseDelegatedCgroup"/>): memory the kernel never reclaims from the server for the jobs. Default none.
    /// </summary>
    public long? ServerMemoryMinBytes { get; init; }

    /// <summary><c>memory.low</c> of the runner's own cgroup (best-effort protection), like <see cref="ServerMemoryMinBytes"/>.</summary>
    public long? ServerMemoryLowBytes { get; init; }

    /// <summary>
    /// The state directory (created 0700): one directory per job with its record and its log, locked by one runner at
    /// a time. Default <c>/var/lib/jobworker</c>. See docs/design-durability.md.
    /// </summary>
    public string StateDirectory { get; init; } = "/var/lib/jobworker";

    /// <summary>Per-job log size cap in bytes; output past it is discarded and reported. Default 1 GiB.</summary>
    public long LogSizeLimitBytes { get; init; } = 1L << 30;

    /// <summary>
    /// Which account jobs run as: by default a uid of each owner's own (<see cref="JobIdentityMode.PerOwner"/>), or
    /// <see cref="User"/>/<see cref="Group"/> for every job (<see cref="JobIdentityMode.SharedAccount"/>).
    /// </summary>
    public JobIdentityOptions Identity { get; init; } = new();

    /// <summary>The user every job runs as with <see cref="JobIdentityMode.SharedAccount"/>: a name or a numeric id. Default <c>nobody</c>.</summary>
    public string User { get; init; } = "nobody";

    /// <summary>The group every job runs as with <see cref="JobIdentityMode.SharedAccount"/>: a name or a numeric id. Default <c>nogroup</c>.</summary>
    public string Group { get; init; } = "nogroup";

    /// <summary>Time between SIGTERM and SIGKILL when a stop gives none. Default 10 s.</summary>
    public TimeSpan DefaultStopGrace { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Isolation for jobs whose spec does not choose. Default none.</summary>
    public JobIsolation DefaultIsolation { get; init; } = JobIsolation.None;

    /// <summary>
    /// The least isolation every job gets: a spec may add namespaces, never remove one of these. A spec (or
    /// <see cref="DefaultIsolation"/>) below it gets it added, and <see cref="Job.Spec"/>, the job's record and its
    /// status show what the job got. Default none.
    /// </summary>
    public JobIsolation RequiredIsolation { get; init; } = JobIsolation.None;

    /// <summary>What every job starts with instead of the server's own process state (rlimits, umask, OOM score, nice).</summary>
    public JobStartState StartState { get; init; } = new();

    /// <summary>Where the runner logs what it reconciles at start-up (re-attached, lost and foreign jobs). Default none.</summary>
    public Microsoft.Extensions.Logging.ILogger? Logger { get; init; }

    /// <summary>
    /// How long the output pipe may stay open after the job's last process is gone: only a process outside the
    /// job that received the pipe's write end (over a unix socket, or moved out of the cgroup) can keep it open.
    /// Then the supervisor stops reading, and the job ends anyway. Default 10 s; tests shorten it.
    /// </summary>
    internal TimeSpan OutputEofTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How many job supervisors are kept started ahead of their jobs (0: start each with its job), at most
    /// <see cref="MaxSupervisorPoolSize"/>. One is enough for starts one after another; a burst beyond the pool starts
    /// the rest directly. Each idle one is a small process of the server's, waiting on a pipe. Default 2.
    /// </summary>
    public int SupervisorPoolSize { get; init; } = 2;

    /// <summary>The largest <see cref="SupervisorPoolSize"/>.</summary>
    public const int MaxSupervisorPoolSize = 64;

    /// <summary>
    /// How long a user's next start stays made ready after the user's last start (zero: never): the next job's cgroups
    /// in the user's group and an idle supervisor already inside them, so that the start makes no cgroup and forks
    /// nothing into a new one (about 0.3 ms, docs/benchmarks-durability.md). One small idle process and three empty
    /// cgroups per user who started a job within this time, for at most 16 users; none for users with a process limit
    /// (<c>UserLimits.MaxProcesses</c>), whose idle supervisor would take one of their processes. Needs
    /// <see cref="SupervisorPoolSize"/> above 0. Default 10 s, at most <see cref="MaxUserStartAheadTime"/>.
    /// </summary>
    public TimeSpan UserStartAheadTime { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The longest <see cref="UserStartAheadTime"/>.</summary>
    public static readonly TimeSpan MaxUserStartAheadTime = TimeSpan.FromHours(1);
}
