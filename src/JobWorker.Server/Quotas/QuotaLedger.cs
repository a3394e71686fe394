using System.Collections.Concurrent;
using System.Globalization;
using JobWorker.Core.Jobs;
using JobWorker.Pki;
using JobWorker.Server.Configuration;
using JobWorker.Server.Errors;

namespace JobWorker.Server.Quotas;

/// <summary>
/// What each user holds, kept in memory for the quota checks on the start path: jobs running or starting, ended
/// jobs kept, and the bytes of their logs. Rebuilt from the runner's jobs (the state directory) at start-up, then
/// moved on by starts, ends and removals; never a scan of all jobs.
/// </summary>
/// <remarks>
/// Each job is tracked by id, so an end and a removal of the same job are counted once whichever comes first
/// (a job may be removed as soon as its final status is published, before its end is seen here).
/// </remarks>
public sealed class QuotaLedger
{
    private readonly QuotaOptions _quotas;
    private readonly int _maxRunningJobsPerUser;
    private readonly long _logSizeLimitBytes;
    private readonly TimeSpan? _retention;
    private readonly ConcurrentDictionary<(string User, string Role), EffectiveQuota> _effective = new();
    private readonly Lock _lock = new();
    private readonly Dictionary<string, UserUsage> _users = new(StringComparer.Ordinal);
    private readonly Dictionary<Guid, Entry> _jobs = [];

    public QuotaLedger(ServerOptions options, QuotaOptions quotas, RetentionOptions retention)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(quotas);
        ArgumentNullException.ThrowIfNull(retention);
        _quotas = quotas;
        _maxRunningJobsPerUser = options.MaxRunningJobsPerUser;
        _logSizeLimitBytes = options.LogSizeLimitBytes;
        _retention = retention.EndedJobs;
    }

    /// <summary>The quotas of <paramref name="caller"/>.</summary>
    public EffectiveQuota QuotaOf(ClientIdentity caller)
    {
        ArgumentNullException.ThrowIfNull(caller);
        return _effective.GetOrAdd((caller.User, caller.Role), key => _quotas.Resolve(key.User, key.Role, _maxRunningJobsPerUser));
    }

    /// <summary>
    /// Reserves a running job for <paramref name="caller"/> if every quota allows a start; a reservation is either
    /// <see cref="Started"/> or <see cref="Unreserve"/>d.
    /// </summary>
    /// <exception cref="RunningJobLimitException">The caller has as many running jobs as allowed.</exception>
    /// <exception cref="QuotaExceededException">The caller keeps as many ended jobs, or log bytes, as allowed.</exception>
    public void Reserve(ClientIdentity caller)
    {
        var quota = QuotaOf(caller);
        var user = caller.User;
        Job[]? running = null;
        long retainedBytes;
        lock (_lock)
        {
            if (!_users.TryGetValue(user, out var usage))
            {
                usage = new UserUsage();
                _users.Add(user, usage);
            }

            SettleEnded(usage);
            if (quota.MaxRunningJobs > 0 && usage.Running >= quota.MaxRunningJobs)
            {
                throw new RunningJobLimitException(
                    $"quota exceeded: user '{user}' has {usage.Running} running jobs and may have {quota.MaxRunningJobs} ({quota.RunningSetting}); stop one (worker stop <id>) or wait for one to end");
            }

            if (quota.MaxRetainedJobs > 0 && usage.Retained >= quota.MaxRetainedJobs)
            {
                throw new QuotaExceededException(
                    $"quota exceeded: user '{user}' keeps {usage.Retained} ended jobs and may keep {quota.MaxRetainedJobs} ({quota.RetainedSetting}); remove ended jobs you no longer need (worker rm <id>){RetentionHint()}");
            }

            retainedBytes = usage.RetainedBytes;
            if (quota.MaxLogBytes > 0)
            {
                if (retainedBytes >= quota.MaxLogBytes)
                {
                    throw LogBytesExceeded(user, retainedBytes, quota);
                }

                // Running jobs' logs still grow: their sizes are read only when they could take the user over.
                if (usage.RunningJobs.Count > 0 && retainedBytes + (usage.RunningJobs.Count * _logSizeLimitBytes) >= quota.MaxLogBytes)
                {
                    running = [.. usage.RunningJobs];
                }
            }

            usage.Running++;
        }

        if (running is not null)
        {
            var total = retainedBytes + running.Sum(job => job.LogLength);
            if (total >= quota.MaxLogBytes)
            {
                Unreserve(user);
                throw LogBytesExceeded(user, total, quota);
            }
        }
    }

    /// <summary>Releases a reservation whose start failed.</summary>
    public void Unreserve(string user)
    {
        lock (_lock)
        {
            if (_users.TryGetValue(user, out var usage))
            {
                usage.Running--;
                Prune(user, usage);
            }
        }
    }

    /// <summary>A reserved start became <paramref name="job"/>.</summary>
    public void Started(string user, Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        lock (_lock)
        {
            var usage = _users[user];
            _jobs[job.Id] = new Entry(user);
            usage.RunningJobs.Add(job);
        }
    }

    /// <summary>Counts a job found in the state directory at start-up; returns whether it was counted as ended
    /// (otherwise it counts as running until <see cref="Ended"/>).</summary>
    public bool Recovered(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        var user = job.Spec.Owner ?? string.Empty;
        var status = job.HasEnded ? job.Status : null;
        lock (_lock)
        {
            if (!_users.TryGetValue(user, out var usage))
            {
                usage = new UserUsage();
                _users.Add(user, usage);
            }

            var entry = new Entry(user);
            _jobs[job.Id] = entry;
            if (status is not null)
            {
                entry.Ended = true;
                entry.LogBytes = status.LogBytes;
                usage.Retained++;
                usage.RetainedBytes += status.LogBytes;
                return true;
            }

            usage.Running++;
            usage.RunningJobs.Add(job);
            return false;
        }
    }

    /// <summary>The job has ended: it no longer runs, and it is kept (with its log) until removed.</summary>
    public void Ended(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        lock (_lock)
        {
            MoveToEnded(job);
        }
    }

    // Under the lock. A job whose final status is published has ended for its owner, even if its end has not
    // reached Ended yet (it comes from a continuation): the user who saw it end must see it counted.
    private void SettleEnded(UserUsage usage)
    {
        if (usage.RunningJobs.Count == 0)
        {
            return;
        }

        List<Job>? ended = null;
        foreach (var job in usage.RunningJobs)
        {
            if (job.HasEnded)
            {
                (ended ??= []).Add(job);
            }
        }

        foreach (var job in ended ?? [])
        {
            MoveToEnded(job);
        }
    }

    private void MoveToEnded(Job job)
    {
        if (!_jobs.TryGetValue(job.Id, out var entry) || entry.Ended)
        {
            return; // removed already (counted there), or counted already
        }

        var bytes = job.Status.LogBytes; // the final status: no I/O
        var usage = _users[entry.User];
        usage.Running--;
        usage.RunningJobs.Remove(job);
        entry.Ended = true;
        entry.LogBytes = bytes;
        usage.Retained++;
        usage.RetainedBytes += bytes;
    }

    /// <summary>The job and its log were removed.</summary>
    public void Removed(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        lock (_lock)
        {
            if (!_jobs.Remove(job.Id, out var entry))
            {
                return;
            }

            var usage = _users[entry.User];
            if (entry.Ended)
            {
                usage.Retained--;
                usage.RetainedBytes -= entry.LogBytes;
            }
            else
            {
                usage.Running--;
                usage.RunningJobs.Remove(job);
            }

            Prune(entry.User, usage);
        }
    }

    /// <summary>What <paramref name="user"/> holds now (running includes starts in progress).</summary>
    public (int Running, int Retained, long RetainedLogBytes) UsageOf(string user)
    {
        lock (_lock)
        {
            if (_users.TryGetValue(user, out var settled))
            {
                SettleEnded(settled);
            }

            return _users.TryGetValue(user, out var usage) ? (usage.Running, usage.Retained, usage.RetainedBytes) : (0, 0, 0);
        }
    }

    /// <summary>The bytes in the logs of <paramref name="user"/>'s running jobs now (each log's current length).</summary>
    public long RunningLogBytes(string user)
    {
        Job[] running;
        lock (_lock)
        {
            running = _users.TryGetValue(user, out var usage) ? [.. usage.RunningJobs] : [];
        }

        return running.Sum(job => job.LogLength);
    }

    private void Prune(string user, UserUsage usage)
    {
        if (usage.Running == 0 && usage.Retained == 0)
        {
            _users.Remove(user);
        }
    }

    private QuotaExceededException LogBytesExceeded(string user, long bytes, EffectiveQuota quota)
        => new($"quota exceeded: the logs of user '{user}' hold {Bytes(bytes)} and may hold {Bytes(quota.MaxLogBytes)} ({quota.LogBytesSetting}); remove ended jobs you no longer need (worker rm <id>){RetentionHint()}");

    private string RetentionHint() => _retention is { } retention
        ? string.Create(CultureInfo.InvariantCulture, $"; ended jobs are removed {retention} after they end (JobWorker:Retention:EndedJobs)")
        : string.Empty;

    /// <summary>Bytes as an exact count and, from 1 KiB on, in binary units: <c>1048576 bytes (1 MiB)</c>.</summary>
    internal static string Bytes(long bytes)
    {
        string[] units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if (bytes < 1024)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{bytes} bytes");
        }

        double value = bytes;
        var unit = -1;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return string.Create(CultureInfo.InvariantCulture, $"{bytes} bytes ({value:0.#} {units[unit]})");
    }

    private sealed class UserUsage
    {
        public int Running { get; set; }

        public int Retained { get; set; }

        public long RetainedBytes { get; set; }

        public HashSet<Job> RunningJobs { get; } = [];
    }

    private sealed class Entry(string user)
    {
        public string User { get; } = user;

        public bool Ended { get; set; }

        public long LogBytes { get; set; }
    }
}
