namespace JobWorker.Server.Configuration;

/// <summary>
/// Per-user rate and concurrency limits, bound from the <c>RateLimits</c> configuration section: one set for the
/// <c>user</c> role and one for <c>admin</c>. Each user (the verified certificate's CN) has limits of their own;
/// users never share a budget. 0 turns a limit off.
/// </summary>
public sealed class RateLimitOptions
{
    public const string Section = "RateLimits";

    /// <summary>Limits for callers with the <c>user</c> role (and any role without limits of its own).</summary>
    public RoleRateLimits User { get; set; } = new() { StartJobBurst = 20, StartJobsPerSecond = 10, MaxOpenStreams = 100, MaxConnections = 100 };

    /// <summary>Limits for callers with the <c>admin</c> role.</summary>
    public RoleRateLimits Admin { get; set; } = new() { StartJobBurst = 100, StartJobsPerSecond = 50, MaxOpenStreams = 1000, MaxConnections = 1000 };

    /// <summary>Every problem with these settings, each naming the setting; empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        User.Validate($"{Section}:{nameof(User)}", errors);
        Admin.Validate($"{Section}:{nameof(Admin)}", errors);
        return errors;
    }
}

/// <summary>One role's limits.</summary>
public sealed class RoleRateLimits
{
    /// <summary>StartJob calls a user may make at once before the rate applies (a token bucket's size). 0 = no limit.</summary>
    public int StartJobBurst { get; set; }

    /// <summary>StartJob calls per second a user may make on average (the bucket's refill; 0.1 = one per 10 s). 0 = no limit.</summary>
    public double StartJobsPerSecond { get; set; }

    /// <summary>StreamOutput calls (<c>worker logs</c>, <c>run</c>) a user may have open at once. 0 = no limit.</summary>
    public int MaxOpenStreams { get; set; }

    /// <summary>
    /// Connections a user may have open at once (each running <c>worker</c> command holds one). A connection over
    /// the cap answers its calls ResourceExhausted and is closed. 0 = no limit.
    /// </summary>
    public int MaxConnections { get; set; }

    /// <summary>The slowest refill accepted: one start a day.</summary>
    public const double MinStartJobsPerSecond = 1.0 / 86_400;

    /// <summary>Whether StartJob is rate limited.</summary>
    public bool LimitsStartJob => StartJobBurst > 0 && StartJobsPerSecond > 0;

    internal void Validate(string prefix, List<string> errors)
    {
        foreach (var (name, value) in new[] { (nameof(StartJobBurst), (double)StartJobBurst), (nameof(StartJobsPerSecond), StartJobsPerSecond), (nameof(MaxOpenStreams), MaxOpenStreams), (nameof(MaxConnections), MaxConnections) })
        {
            if (value < 0 || !double.IsFinite(value))
            {
                errors.Add($"{prefix}:{name} must be 0 (no limit) or positive (is {value})");
            }
        }

        if ((StartJobBurst == 0) != (StartJobsPerSecond == 0))
        {
            errors.Add($"{prefix}: set both StartJobBurst and StartJobsPerSecond, or both to 0 for no StartJob rate limit (are {StartJobBurst} and {StartJobsPerSecond})");
        }
        else if (StartJobsPerSecond > 0 && StartJobsPerSecond < MinStartJobsPerSecond)
        {
            errors.Add($"{prefix}:StartJobsPerSecond ({StartJobsPerSecond}) must be at least {MinStartJobsPerSecond} (one start a day), or 0 for no limit");
        }
        else if (StartJobsPerSecond > StartJobBurst)
        {
            errors.Add($"{prefix}:StartJobsPerSecond ({StartJobsPerSecond}) must not exceed StartJobBurst ({StartJobBurst}): the bucket holds at most a burst");
        }
    }
}
