namespace JobWorker.Server.Configuration;

/// <summary>
/// Per-user quotas, bound from <c>JobWorker:Quotas</c>: how many jobs a user may have running, how many ended jobs
/// the server keeps for them, and how many bytes of logs. Each limit is looked up per user, then per role, then in
/// <see cref="Default"/>; a limit left empty at one level comes from the next. 0 means no quota.
/// </summary>
public sealed class QuotaOptions
{
    public const string Section = ServerOptions.Section + ":Quotas";

    /// <summary>The limits of every user unless their role or name says otherwise. Its <see cref="QuotaLimits.MaxRunningJobs"/>
    /// defaults to <see cref="ServerOptions.MaxRunningJobsPerUser"/>.</summary>
    public QuotaLimits Default { get; set; } = new() { MaxRetainedJobs = 1000, MaxLogBytes = 10L << 30 };

    /// <summary>Limits by certificate role (<c>user</c>, <c>admin</c>).</summary>
    public Dictionary<string, QuotaLimits> Roles { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Limits by user name (the certificate's CN), exactly as written.</summary>
    public Dictionary<string, QuotaLimits> Users { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Every problem with these settings, each naming the setting; empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        Validate(errors, $"{Section}:Default", Default);
        foreach (var (role, limits) in Roles)
        {
            if (!Pki.Roles.IsKnown(role))
            {
                errors.Add($"{Section}:Roles:{role}: '{role}' is not a role; the roles are '{Pki.Roles.User}' and '{Pki.Roles.Admin}'");
            }

            Validate(errors, $"{Section}:Roles:{role}", limits);
        }

        foreach (var (user, limits) in Users)
        {
            Validate(errors, $"{Section}:Users:{user}", limits);
        }

        return errors;
    }

    /// <summary>The limits that apply to <paramref name="user"/> with <paramref name="role"/>, and the setting each came from.</summary>
    /// <param name="user">The caller's user name.</param>
    /// <param name="role">The caller's role.</param>
    /// <param name="maxRunningJobsPerUser">The server-wide running-job cap, the last fallback for running jobs.</param>
    public EffectiveQuota Resolve(string user, string role, int maxRunningJobsPerUser)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(role);
        var byUser = Users.GetValueOrDefault(user);
        var byRole = Roles.GetValueOrDefault(role);

        (long Value, string Setting) Pick(Func<QuotaLimits, long?> limit, string name, (long, string) fallback)
            => byUser is not null && limit(byUser) is { } u ? (u, $"{Section}:Users:{user}:{name}")
                : byRole is not null && limit(byRole) is { } r ? (r, $"{Section}:Roles:{role}:{name}")
                : limit(Default) is { } d ? (d, $"{Section}:Default:{name}")
                : fallback;

        var running = Pick(l => l.MaxRunningJobs, nameof(QuotaLimits.MaxRunningJobs), (maxRunningJobsPerUser, $"{ServerOptions.Section}:{nameof(ServerOptions.MaxRunningJobsPerUser)}"));
        var retained = Pick(l => l.MaxRetainedJobs, nameof(QuotaLimits.MaxRetainedJobs), (0, $"{Section}:Default:{nameof(QuotaLimits.MaxRetainedJobs)}"));
        var bytes = Pick(l => l.MaxLogBytes, nameof(QuotaLimits.MaxLogBytes), (0, $"{Section}:Default:{nameof(QuotaLimits.MaxLogBytes)}"));
        return new EffectiveQuota((int)running.Value, running.Setting, (int)retained.Value, retained.Setting, bytes.Value, bytes.Setting);
    }

    private static void Validate(List<string> errors, string path, QuotaLimits? limits)
    {
        if (limits is null)
        {
            return;
        }

        if (limits.MaxRunningJobs < 0)
        {
            errors.Add($"{path}:{nameof(QuotaLimits.MaxRunningJobs)} must be 0 (no quota) or positive (is {limits.MaxRunningJobs})");
        }

        if (limits.MaxRetainedJobs < 0)
        {
            errors.Add($"{path}:{nameof(QuotaLimits.MaxRetainedJobs)} must be 0 (no quota) or positive (is {limits.MaxRetainedJobs})");
        }

        if (limits.MaxLogBytes < 0)
        {
            errors.Add($"{path}:{nameof(QuotaLimits.MaxLogBytes)} must be 0 (no quota) or positive (is {limits.MaxLogBytes})");
        }
    }
}

/// <summary>One level of quota settings; an empty limit is taken from the next level.</summary>
public sealed class QuotaLimits
{
    /// <summary>Jobs running (or starting) at once.</summary>
    public int? MaxRunningJobs { get; set; }

    /// <summary>Ended jobs kept (with their logs) until removed.</summary>
    public int? MaxRetainedJobs { get; set; }

    /// <summary>Bytes of output in the logs of all the user's jobs, running and ended.</summary>
    public long? MaxLogBytes { get; set; }
}

/// <summary>The quotas of one caller; 0 means none. Each <c>*Setting</c> names the setting the value came from.</summary>
public sealed record EffectiveQuota(int MaxRunningJobs, string RunningSetting, int MaxRetainedJobs, string RetainedSetting, long MaxLogBytes, string LogBytesSetting);
