using JobWorker.Core.Jobs;

namespace JobWorker.Server.Configuration;

/// <summary>
/// The server's settings, bound from the <c>JobWorker</c> configuration section: appsettings.json, environment
/// variables (<c>JOBWORKER__LISTEN=…</c>) and command-line flags (<c>--listen …</c>, see <see cref="ServerApp.SwitchMappings"/>).
/// </summary>
public sealed class ServerOptions
{
    public const string Section = "JobWorker";

    /// <summary>The gRPC endpoint: <c>IP:port</c>, <c>[IPv6]:port</c> or <c>localhost:port</c>. Port 0 picks a free port.</summary>
    public string Listen { get; set; } = "127.0.0.1:50051";

    /// <summary>The CA that client certificates must chain to (PEM). Nothing else is trusted.</summary>
    public string CaCertificate { get; set; } = "/etc/jobworker/pki/ca.crt";

    /// <summary>The server certificate (PEM, serverAuth, the listening names as SANs).</summary>
    public string ServerCertificate { get; set; } = "/etc/jobworker/pki/server.crt";

    /// <summary>The server private key (PEM, mode 0600).</summary>
    public string ServerKey { get; set; } = "/etc/jobworker/pki/server.key";

    /// <summary>The cgroup v2 directory the runner owns; empty means <c>&lt;cgroup2 mount&gt;/jobworker</c>.</summary>
    public string? CgroupRoot { get; set; }

    /// <summary>Use the service's own delegated cgroup (systemd <c>Delegate=yes</c>) instead of <see cref="CgroupRoot"/>.</summary>
    public bool UseDelegatedCgroup { get; set; }

    /// <summary>The state directory (0700): each job's record and log. Locked by one server at a time.</summary>
    public string StateDirectory { get; set; } = "/var/lib/jobworker";

    /// <summary>
    /// Stop every job (within its grace) when the server shuts down. Off by default: jobs outlive the server and a
    /// restarted server re-attaches to them (upgrade-friendly; see docs/design-durability.md).
    /// </summary>
    public bool StopJobsOnShutdown { get; set; }

    /// <summary>Per-job log size cap in bytes.</summary>
    public long LogSizeLimitBytes { get; set; } = 1L << 30;

    /// <summary>Which account each user's jobs run as (the <c>Identity</c> section): by default a uid of each user's own.</summary>
    public IdentityOptions Identity { get; set; } = new();

    /// <summary>The user every job runs as with <c>Identity:Mode</c> <c>SharedAccount</c> (name or id).</summary>
    public string JobUser { get; set; } = "nobody";

    /// <summary>The group every job runs as with <c>Identity:Mode</c> <c>SharedAccount</c> (name or id).</summary>
    public string JobGroup { get; set; } = "nogroup";

    /// <summary>Time between SIGTERM and SIGKILL when a stop request gives none, and at shutdown.</summary>
    public TimeSpan DefaultStopGrace { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The longest grace a stop request may ask for.</summary>
    public TimeSpan MaxStopGrace { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>A job's soft open-file limit (RLIMIT_NOFILE), whatever the server's own; empty means 1024 (systemd's default for services) or the hard limit if lower.</summary>
    public long? JobOpenFilesSoftLimit { get; set; }

    /// <summary>A job's hard open-file limit; empty means the server's own hard limit.</summary>
    public long? JobOpenFilesHardLimit { get; set; }

    /// <summary>A job's umask, in octal (<c>0022</c>).</summary>
    public string JobUmask { get; set; } = "0022";

    /// <summary>A job's <c>oom_score_adj</c>, -1000 to 1000.</summary>
    public int JobOomScoreAdjust { get; set; }

    /// <summary>A job's nice value, -20 to 19.</summary>
    public int JobNice { get; set; }

    /// <summary>What every job starts with (docs/security.md); call after <see cref="Validate"/> found no problem.</summary>
    public JobStartState JobStartState() => new()
    {
        OpenFilesSoftLimit = JobOpenFilesSoftLimit,
        OpenFilesHardLimit = JobOpenFilesHardLimit,
        Umask = ParseUmask(JobUmask) ?? throw new InvalidOperationException($"{Section}:JobUmask '{JobUmask}' is not valid; call Validate first."),
        OomScoreAdjust = JobOomScoreAdjust,
        Nice = JobNice,
    };

    /// <summary>
    /// The namespaces every job gets unless a careful operator says otherwise: its own processes, mounts (a private
    /// <c>/tmp</c> and <c>/dev/shm</c>, the state directory hidden), IPC objects and host name, but the host's network,
    /// which jobs often need. See docs/security.md.
    /// </summary>
    public const JobIsolation StandardIsolation = JobIsolation.Pid | JobIsolation.Mount | JobIsolation.Ipc | JobIsolation.Uts;

    /// <summary>
    /// Isolation for jobs whose request does not choose: <c>None</c>, or a comma list of <c>Pid, Mount, Network, Ipc,
    /// Uts</c>. Default <see cref="StandardIsolation"/>.
    /// </summary>
    public JobIsolation DefaultIsolation { get; set; } = StandardIsolation;

    /// <summary>
    /// The least isolation every job gets, whatever its request says (an empty <c>isolation {}</c> included): a request
    /// may add namespaces, never remove these. Requests below it are not refused; the job gets these namespaces added
    /// and its status shows them. Default <see cref="StandardIsolation"/>; <c>None</c> lets requests turn isolation off.
    /// </summary>
    public JobIsolation RequiredIsolation { get; set; } = StandardIsolation;

    /// <summary>Running jobs one user may have at once; more answer ResourceExhausted. 0 = no cap.</summary>
    public int MaxRunningJobsPerUser { get; set; } = 100;

    /// <summary>Job supervisors kept started ahead of their jobs, so a start does not wait for one to be executed
    /// (0 = start each with its job). See docs/design-durability.md.</summary>
    public int SupervisorPoolSize { get; set; } = 2;

    /// <summary>
    /// How long a user's next start stays made ready after the user's last start: the next job's cgroups and an idle
    /// supervisor inside them (zero: never). See <see cref="JobRunnerOptions.UserStartAheadTime"/>.
    /// </summary>
    public TimeSpan UserStartAheadTime { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest number of arguments (argv after the command).</summary>
    public int MaxArguments { get; set; } = 4096;

    /// <summary>Largest total size of command, arguments and environment in UTF-8 bytes (Linux allows ~2 MiB).</summary>
    public int MaxArgumentBytes { get; set; } = 256 * 1024;

    /// <summary>Largest number of environment variables a request may add.</summary>
    public int MaxEnvironmentVariables { get; set; } = 256;

    /// <summary>
    /// Concurrent HTTP/2 streams per client connection. Kestrel's default of 100 would cap how many jobs one
    /// client connection can follow at once; each follower is one stream.
    /// </summary>
    public int MaxStreamsPerConnection { get; set; } = 1000;

    /// <summary>How long the server remembers a StartJob request_id (the idempotency key) and the job it started.</summary>
    public TimeSpan StartRequestIdRetention { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Most StartJob request_ids remembered per user; beyond it the oldest are forgotten first.</summary>
    public int MaxStartRequestIdsPerUser { get; set; } = 1000;

    /// <summary>Optional plain-HTTP endpoint for Prometheus text metrics (<c>GET /metrics</c>); loopback only. Empty = off.</summary>
    public string? MetricsListen { get; set; }

    /// <summary>Every problem with these settings, each naming the setting; empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!ListenAddress.TryParse(Listen, out _, out var error))
        {
            errors.Add($"{Section}:Listen: {error}");
        }

        if (!string.IsNullOrEmpty(MetricsListen))
        {
            if (!ListenAddress.TryParse(MetricsListen, out var metrics, out error))
            {
                errors.Add($"{Section}:MetricsListen: {error}");
            }
            else if (!metrics!.IsLoopback)
            {
                errors.Add($"{Section}:MetricsListen: '{MetricsListen}' is not a loopback address; metrics are served without TLS, so only loopback is allowed");
            }
        }

        foreach (var (name, value) in new[] { (nameof(CaCertificate), CaCertificate), (nameof(ServerCertificate), ServerCertificate), (nameof(ServerKey), ServerKey), (nameof(StateDirectory), StateDirectory) })
        {
            if (string.IsNullOrWhiteSpace(value))
            {
                errors.Add($"{Section}:{name} is empty");
            }
        }

        if (DefaultStopGrace < TimeSpan.Zero || DefaultStopGrace > MaxStopGrace)
        {
            errors.Add($"{Section}:DefaultStopGrace {DefaultStopGrace} must be between 0 and MaxStopGrace ({MaxStopGrace})");
        }

        Positive(errors, nameof(LogSizeLimitBytes), LogSizeLimitBytes);
        Positive(errors, nameof(MaxArguments), MaxArguments);
        Positive(errors, nameof(MaxArgumentBytes), MaxArgumentBytes);
        Positive(errors, nameof(MaxStreamsPerConnection), MaxStreamsPerConnection);
        Positive(errors, nameof(MaxStartRequestIdsPerUser), MaxStartRequestIdsPerUser);
        if (StartRequestIdRetention <= TimeSpan.Zero || StartRequestIdRetention > TimeSpan.FromDays(1))
        {
            errors.Add($"{Section}:StartRequestIdRetention {StartRequestIdRetention} must be more than 0 and at most 1 day");
        }
        if (UserStartAheadTime < TimeSpan.Zero || UserStartAheadTime > JobRunnerOptions.MaxUserStartAheadTime)
        {
            errors.Add($"{Section}:UserStartAheadTime must be between 0 (make no start ready per user) and {JobRunnerOptions.MaxUserStartAheadTime} (is {UserStartAheadTime})");
        }

        if (SupervisorPoolSize is < 0 or > JobRunnerOptions.MaxSupervisorPoolSize)
        {
            errors.Add($"{Section}:SupervisorPoolSize must be between 0 (start each supervisor with its job) and {JobRunnerOptions.MaxSupervisorPoolSize} (is {SupervisorPoolSize})");
        }

        if (MaxRunningJobsPerUser < 0)
        {
            errors.Add($"{Section}:MaxRunningJobsPerUser must be 0 (no cap) or positive");
        }

        if (MaxEnvironmentVariables < 0)
        {
            errors.Add($"{Section}:MaxEnvironmentVariables must not be negative");
        }

        foreach (var (name, isolation) in new[] { (nameof(DefaultIsolation), DefaultIsolation), (nameof(RequiredIsolation), RequiredIsolation) })
        {
            if ((isolation & ~JobIsolation.All) != 0)
            {
                errors.Add($"{Section}:{name} '{isolation}' has unknown flags; use None or a comma list of Pid, Mount, Network, Ipc, Uts");
            }
        }

        ValidateJobStartState(errors);
        Identity.Validate(errors);
        return errors;
    }

    private void ValidateJobStartState(List<string> errors)
    {
        if (JobOpenFilesSoftLimit is { } soft)
        {
            Positive(errors, nameof(JobOpenFilesSoftLimit), soft);
        }

        if (JobOpenFilesHardLimit is { } hard)
        {
            Positive(errors, nameof(JobOpenFilesHardLimit), hard);
            if (hard > 0 && JobOpenFilesSoftLimit > hard)
            {
                errors.Add($"{Section}:JobOpenFilesSoftLimit ({JobOpenFilesSoftLimit}) must not exceed JobOpenFilesHardLimit ({hard})");
            }
        }

        if (ParseUmask(JobUmask) is null)
        {
            errors.Add($"{Section}:JobUmask '{JobUmask}' is not an octal mode between 0000 and 0777 (for example 0022 or 0077)");
        }

        if (JobOomScoreAdjust is < -1000 or > 1000)
        {
            errors.Add($"{Section}:JobOomScoreAdjust must be between -1000 and 1000 (is {JobOomScoreAdjust})");
        }

        if (JobNice is < -20 or > 19)
        {
            errors.Add($"{Section}:JobNice must be between -20 and 19 (is {JobNice})");
        }
    }

    /// <summary>An octal umask of one to four digits, 0 to 0777; null when it is not one.</summary>
    private static int? ParseUmask(string? text)
    {
        if (string.IsNullOrEmpty(text) || text.Length > 4 || !text.All(c => c is >= '0' and <= '7'))
        {
            return null;
        }

        var value = text.Aggregate(0, (mask, digit) => (mask * 8) + (digit - '0'));
        return value <= 0b_111_111_111 ? value : null;
    }

    private static void Positive(List<string> errors, string name, long value)
    {
        if (value <= 0)
        {
            errors.Add($"{Section}:{name} must be positive (is {value})");
        }
    }
}
