using System.Collections.Frozen;
using System.Globalization;
using JobWorker.Core.Jobs;
using JobWorker.Pki;
using JobWorker.Server.Configuration;
using JobWorker.Server.Errors;

namespace JobWorker.Server.Services;

/// <summary>
/// Applies <see cref="LimitsOptions"/> to a start request: a limit the request omits gets the caller's default, a
/// limit above the caller's maximum is refused naming the limit, the value and the maximum. The result is what the
/// job runs with, is recorded, and is what GetJob reports. Resolved per caller once, at start-up.
/// </summary>
public sealed class JobLimitPolicy
{
    private static readonly string[] KnownRoles = [Roles.Admin, Roles.User];

    private readonly FrozenDictionary<string, EffectiveJobLimits> _byRole;
    private readonly FrozenDictionary<(string User, string Role), EffectiveJobLimits> _byUser;

    public JobLimitPolicy(LimitsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _byRole = KnownRoles.ToFrozenDictionary(role => role, role => options.Resolve(null, role), StringComparer.Ordinal);
        _byUser = options.Users.Keys
            .SelectMany(user => KnownRoles.Select(role => (user, role)))
            .ToFrozenDictionary(key => key, key => options.Resolve(key.user, key.role));
    }

    /// <summary>The defaults and maximums that apply to <paramref name="caller"/>.</summary>
    public EffectiveJobLimits For(ClientIdentity caller)
    {
        ArgumentNullException.ThrowIfNull(caller);
        return _byUser.Count > 0 && _byUser.TryGetValue((caller.User, caller.Role), out var limits) ? limits
            : _byRole.TryGetValue(caller.Role, out limits) ? limits
            : throw new InvalidOperationException($"role '{caller.Role}' has no limits; the certificate check admits only known roles");
    }

    /// <summary>
    /// Every default some caller gets, with the controller it needs: a default the host cannot enforce must stop the
    /// server at start-up rather than fail every start that omits the limit.
    /// </summary>
    public IEnumerable<(string Setting, string Controller)> Defaults()
        => _byRole.Values.Concat(_byUser.Values)
            .SelectMany(l => new[] { (l.CpuDefault, "cpu"), (l.MemoryDefault, "memory"), (l.ProcessesDefault, "pids") })
            .Where(d => d.Item1.IsSet)
            .Select(d => (d.Item1.Setting!, d.Item2))
            .Distinct();

    /// <summary>The spec with <paramref name="caller"/>'s defaults filled in.</summary>
    /// <exception cref="InvalidRequestException">A limit is above the caller's maximum.</exception>
    public JobSpec Apply(JobSpec spec, ClientIdentity caller)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var limits = For(caller);
        if (limits.IsEmpty)
        {
            return spec;
        }

        var requested = spec.Limits;
        CheckMaximum("limits.cpu_cores", requested.CpuCores, limits.CpuMaximum, " cores");
        CheckMaximum("limits.memory_bytes", requested.MemoryBytes, limits.MemoryMaximum, " bytes");
        CheckMaximum("limits.max_processes", requested.MaxProcesses, limits.ProcessesMaximum, " processes");

        var effective = requested with
        {
            CpuCores = requested.CpuCores ?? (limits.CpuDefault.IsSet ? limits.CpuDefault.Value : null),
            MemoryBytes = requested.MemoryBytes ?? (limits.MemoryDefault.IsSet ? (long)limits.MemoryDefault.Value : null),
            MaxProcesses = requested.MaxProcesses ?? (limits.ProcessesDefault.IsSet ? (long)limits.ProcessesDefault.Value : null),
        };
        return effective == requested ? spec : spec with { Limits = effective };
    }

    private static void CheckMaximum(string field, double? value, EffectiveLimit maximum, string unit)
    {
        if (value is { } v && maximum.IsSet && v > maximum.Value)
        {
            throw new InvalidRequestException(field, $"{Format(v)} is above the maximum of {Format(maximum.Value)}{unit} ({maximum.Setting}); ask for at most {Format(maximum.Value)}");
        }
    }

    private static string Format(double value) => Math.Floor(value) == value && Math.Abs(value) < 1e15
        ? ((long)value).ToString(CultureInfo.InvariantCulture)
        : value.ToString(CultureInfo.InvariantCulture);
}
