using System.Globalization;
using JobWorker.Core.Jobs;
using JobWorker.Pki;

namespace JobWorker.Server.Configuration;

/// <summary>
/// Resource limits the server imposes, bound from <c>JobWorker:Limits</c>: per-job defaults (applied when a request
/// omits a limit) and maximums (a request above one is refused), for everyone, per role and per user; the aggregate
/// limits of each user's cgroup; and the protection of the server's own cgroup. Unknown keys are refused at start-up.
/// </summary>
public sealed class LimitsOptions
{
    public const string Section = "JobWorker:Limits";

    /// <summary>Limits a job gets when its request does not set them. Empty = none (unlimited).</summary>
    public JobLimitValues Default { get; set; } = new();

    /// <summary>The largest limits a request may set. Empty = up to the protocol's bounds.</summary>
    public JobLimitValues Maximum { get; set; } = new();

    /// <summary>Per role (<c>admin</c>, <c>user</c>): each value set here replaces the global one.</summary>
    public Dictionary<string, RoleLimitValues> Roles { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Per user (the certificate's CN): each value set here replaces the role's and the global one.</summary>
    public Dictionary<string, UserLimitValues> Users { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Aggregate limits of every user's cgroup (all of one user's jobs together).</summary>
    public UserGroupLimitValues UserGroup { get; set; } = new();

    /// <summary>Protection of the server's own cgroup (<c>&lt;root&gt;/server</c>, with <c>UseDelegatedCgroup</c>).</summary>
    public ServerGroupValues Server { get; set; } = new();

    /// <summary>Every problem with these settings, each naming the setting; empty when they are usable.</summary>
    public IReadOnlyList<string> Validate(bool useDelegatedCgroup)
    {
        var errors = new List<string>();
        CheckValues(errors, $"{Section}:Default", Default);
        CheckValues(errors, $"{Section}:Maximum", Maximum);
        foreach (var (role, values) in Roles)
        {
            if (!Pki.Roles.IsKnown(role))
            {
                errors.Add($"{Section}:Roles:{role}: unknown role; use '{Pki.Roles.Admin}' or '{Pki.Roles.User}'");
                continue;
            }

            CheckValues(errors, $"{Section}:Roles:{role}:Default", values.Default);
            CheckValues(errors, $"{Section}:Roles:{role}:Maximum", values.Maximum);
        }

        foreach (var (user, values) in Users)
        {
            if (ClientIdentity.Validate(user, Pki.Roles.User) is { } problem)
            {
                errors.Add($"{Section}:Users:{user}: {problem}");
                continue;
            }

            CheckValues(errors, $"{Section}:Users:{user}:Default", values.Default);
            CheckValues(errors, $"{Section}:Users:{user}:Maximum", values.Maximum);
            CheckUserGroup(errors, $"{Section}:Users:{user}:UserGroup", values.UserGroup);
        }

        CheckUserGroup(errors, $"{Section}:UserGroup", UserGroup);
        if (errors.Count == 0)
        {
            // Every combination a caller can have: a default above the maximum would refuse a request that sets nothing.
            foreach (var user in Users.Keys.Prepend(null))
            {
                foreach (var role in new[] { Pki.Roles.Admin, Pki.Roles.User })
                {
                    CheckDefaultsWithinMaximums(errors, Resolve(user, role));
                }
            }
        }

        foreach (var (name, value) in new[] { ("MemoryMinBytes", Server.MemoryMinBytes), ("MemoryLowBytes", Server.MemoryLowBytes) })
        {
            if (value is { } bytes && bytes < 0)
            {
                errors.Add($"{Section}:Server:{name} must not be negative (is {bytes})");
            }
            else if (value is not null && !useDelegatedCgroup)
            {
                errors.Add($"{Section}:Server:{name} protects the server's own cgroup, which exists only with {ServerOptions.Section}:UseDelegatedCgroup; without it, protect the server where it runs (systemd: MemoryMin= and OOMScoreAdjust= in its unit)");
            }
        }

        return errors.Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>The defaults and maximums of <paramref name="user"/> (null: no per-user settings) in <paramref name="role"/>.</summary>
    public EffectiveJobLimits Resolve(string? user, string role)
    {
        var roleValues = Roles.GetValueOrDefault(role);
        var userValues = user is null ? null : Users.GetValueOrDefault(user);
        var scopes = new (string Setting, JobLimitValues? Default, JobLimitValues? Maximum)[]
        {
            ($"{Section}:Users:{user}", userValues?.Default, userValues?.Maximum),
            ($"{Section}:Roles:{role}", roleValues?.Default, roleValues?.Maximum),
            (Section, Default, Maximum),
        };

        EffectiveLimit Pick<T>(Func<JobLimitValues?, T?> value, string name, bool maximum)
            where T : struct
        {
            foreach (var (setting, defaults, maximums) in scopes)
            {
                if (value(maximum ? maximums : defaults) is { } v)
                {
                    return new EffectiveLimit(Convert.ToDouble(v, CultureInfo.InvariantCulture), $"{setting}:{(maximum ? "Maximum" : "Default")}:{name}");
                }
            }

            return default;
        }

        return new EffectiveJobLimits(
            Pick(v => v?.CpuCores, nameof(JobLimitValues.CpuCores), false),
            Pick(v => v?.CpuCores, nameof(JobLimitValues.CpuCores), true),
            Pick(v => v?.MemoryBytes, nameof(JobLimitValues.MemoryBytes), false),
            Pick(v => v?.MemoryBytes, nameof(JobLimitValues.MemoryBytes), true),
            Pick(v => v?.MaxProcesses, nameof(JobLimitValues.MaxProcesses), false),
            Pick(v => v?.MaxProcesses, nameof(JobLimitValues.MaxProcesses), true));
    }

    /// <summary>The aggregate limits of every user's cgroup, as Core takes them.</summary>
    public UserCgroupLimits UserCgroupLimits() => UserGroup.ToCore();

    /// <summary>Users whose cgroup has its own aggregate limits (each value replaces the global one).</summary>
    public Dictionary<string, UserCgroupLimits> UserCgroupLimitsByUser()
        => Users.Where(u => !u.Value.UserGroup.IsEmpty).ToDictionary(u => u.Key, u => u.Value.UserGroup.Over(UserGroup).ToCore(), StringComparer.Ordinal);

    private static void CheckDefaultsWithinMaximums(List<string> errors, EffectiveJobLimits limits)
    {
        foreach (var (value, maximum) in new[] { (limits.CpuDefault, limits.CpuMaximum), (limits.MemoryDefault, limits.MemoryMaximum), (limits.ProcessesDefault, limits.ProcessesMaximum) })
        {
            if (value.IsSet && maximum.IsSet && value.Value > maximum.Value)
            {
                errors.Add($"{value.Setting} ({value.Value.ToString(CultureInfo.InvariantCulture)}) is above {maximum.Setting} ({maximum.Value.ToString(CultureInfo.InvariantCulture)}); a default must not exceed the maximum that applies to the same callers");
            }
        }
    }

    private static void CheckValues(List<string> errors, string setting, JobLimitValues? values)
    {
        if (values is null)
        {
            return;
        }

        if (values.CpuCores is { } cpu && (!double.IsFinite(cpu) || cpu < Services.RequestValidator.MinCpuCores || cpu > Services.RequestValidator.MaxCpuCores))
        {
            errors.Add($"{setting}:CpuCores must be between {Services.RequestValidator.MinCpuCores} and {Services.RequestValidator.MaxCpuCores} cores (is {cpu.ToString(CultureInfo.InvariantCulture)})");
        }

        if (values.MemoryBytes is { } memory && (memory < Services.RequestValidator.MinMemoryBytes || memory > Services.RequestValidator.MaxMemoryBytes))
        {
            errors.Add($"{setting}:MemoryBytes must be between {Services.RequestValidator.MinMemoryBytes} (1 MiB) and {Services.RequestValidator.MaxMemoryBytes} (is {memory})");
        }

        if (values.MaxProcesses is { } pids && (pids < 1 || pids > Services.RequestValidator.MaxProcessesLimit))
        {
            errors.Add($"{setting}:MaxProcesses must be between 1 and {Services.RequestValidator.MaxProcessesLimit} (is {pids})");
        }
    }

    private static void CheckUserGroup(List<string> errors, string setting, UserGroupLimitValues? values)
    {
        if (values is null)
        {
            return;
        }

        if (values.CpuCores is { } cpu && (!double.IsFinite(cpu) || cpu < 0.01 || cpu > 4096))
        {
            errors.Add($"{setting}:CpuCores must be between 0.01 and 4096 cores (is {cpu.ToString(CultureInfo.InvariantCulture)})");
        }

        if (values.CpuWeight is { } weight && weight is < 1 or > 10_000)
        {
            errors.Add($"{setting}:CpuWeight must be between 1 and 10000; the kernel's default is 100 (is {weight})");
        }

        if (values.MemoryBytes is { } memory && memory < Services.RequestValidator.MinMemoryBytes)
        {
            errors.Add($"{setting}:MemoryBytes must be at least {Services.RequestValidator.MinMemoryBytes} (1 MiB) (is {memory})");
        }

        if (values.MaxProcesses is { } pids && pids < 1)
        {
            errors.Add($"{setting}:MaxProcesses must be at least 1 (is {pids})");
        }
    }
}

/// <summary>Per-job limits: CPU in cores, memory in bytes, processes and threads.</summary>
public sealed class JobLimitValues
{
    public double? CpuCores { get; set; }

    public long? MemoryBytes { get; set; }

    public long? MaxProcesses { get; set; }
}

/// <summary>A role's defaults and maximums.</summary>
public sealed class RoleLimitValues
{
    public JobLimitValues Default { get; set; } = new();

    public JobLimitValues Maximum { get; set; } = new();
}

/// <summary>A user's defaults, maximums and cgroup aggregate.</summary>
public sealed class UserLimitValues
{
    public JobLimitValues Default { get; set; } = new();

    public JobLimitValues Maximum { get; set; } = new();

    public UserGroupLimitValues UserGroup { get; set; } = new();
}

/// <summary>Aggregate limits of a user's cgroup.</summary>
public sealed class UserGroupLimitValues
{
    public long? MemoryBytes { get; set; }

    public long? MaxProcesses { get; set; }

    public double? CpuCores { get; set; }

    public int? CpuWeight { get; set; }

    internal bool IsEmpty => MemoryBytes is null && MaxProcesses is null && CpuCores is null && CpuWeight is null;

    internal UserGroupLimitValues Over(UserGroupLimitValues fallback) => new()
    {
        MemoryBytes = MemoryBytes ?? fallback.MemoryBytes,
        MaxProcesses = MaxProcesses ?? fallback.MaxProcesses,
        CpuCores = CpuCores ?? fallback.CpuCores,
        CpuWeight = CpuWeight ?? fallback.CpuWeight,
    };

    internal UserCgroupLimits ToCore() => new() { MemoryBytes = MemoryBytes, MaxProcesses = MaxProcesses, CpuCores = CpuCores, CpuWeight = CpuWeight };
}

/// <summary>Protection of the server's own cgroup.</summary>
public sealed class ServerGroupValues
{
    /// <summary><c>memory.min</c>: memory never reclaimed from the server.</summary>
    public long? MemoryMinBytes { get; set; }

    /// <summary><c>memory.low</c>: memory reclaimed from the server only when nothing else is left.</summary>
    public long? MemoryLowBytes { get; set; }
}

/// <summary>One resolved default or maximum and the setting it came from; <see cref="IsSet"/> false when none applies.</summary>
public readonly record struct EffectiveLimit(double Value, string? Setting)
{
    public bool IsSet => Setting is not null;
}

/// <summary>The defaults and maximums that apply to one caller.</summary>
public sealed record EffectiveJobLimits(
    EffectiveLimit CpuDefault,
    EffectiveLimit CpuMaximum,
    EffectiveLimit MemoryDefault,
    EffectiveLimit MemoryMaximum,
    EffectiveLimit ProcessesDefault,
    EffectiveLimit ProcessesMaximum)
{
    /// <summary>Whether nothing applies (the request is taken as it is).</summary>
    public bool IsEmpty => !CpuDefault.IsSet && !CpuMaximum.IsSet && !MemoryDefault.IsSet && !MemoryMaximum.IsSet && !ProcessesDefault.IsSet && !ProcessesMaximum.IsSet;
}
