using System.Globalization;
using JobWorker.Core.Jobs;

namespace JobWorker.Core.Cgroups;

/// <summary>
/// A job's <see cref="ResourceLimits"/> turned into cgroup v2 file writes, validated before anything is created.
/// </summary>
internal sealed class CgroupLimitPlan
{
    /// <summary>cpu.max period: the kernel default, 100 ms.</summary>
    internal const long CpuPeriodMicroseconds = 100_000;

    /// <summary>The kernel refuses a cpu.max quota under 1 ms.</summary>
    internal const long MinCpuQuotaMicroseconds = 1_000;

    /// <summary>Less memory than this cannot even exec a program; refuse it rather than OOM at once.</summary>
    internal const long MinMemoryBytes = 1L << 20;

    /// <summary>No writes.</summary>
    public static CgroupLimitPlan Empty { get; } = new([]);

    private CgroupLimitPlan(List<(string Controller, string File, string Value, bool Optional)> writes)
    {
        Writes = writes;
    }

    /// <summary>The writes in order: (controller, file, value, optional = skip when the file is absent).</summary>
    public IReadOnlyList<(string Controller, string File, string Value, bool Optional)> Writes { get; }

    /// <summary>The controllers the plan needs.</summary>
    public IEnumerable<string> Controllers => Writes.Select(w => w.Controller).Distinct();

    /// <summary>Validates the limits; devices are resolved through sysfs.</summary>
    /// <param name="limits">The job's limits.</param>
    /// <param name="extraProcesses">Processes of ours in the job's group for its whole life (the namespace init), added
    /// to <see cref="ResourceLimits.MaxProcesses"/> so that the job's own processes get the number it asked for.</param>
    /// <param name="sysfs">Where sysfs is mounted (tests).</param>
    /// <exception cref="ArgumentException">A value the kernel would reject or that cannot work; names the field.</exception>
    public static CgroupLimitPlan Create(ResourceLimits limits, int extraProcesses = 0, string sysfs = "/sys")
    {
        ArgumentNullException.ThrowIfNull(limits);
        var writes = new List<(string, string, string, bool)>();

        if (limits.CpuCores is { } cores)
        {
            if (!double.IsFinite(cores) || cores <= 0)
            {
                throw JobSpecValidator.Invalid($"Limits.CpuCores must be a positive number of cores (for example 0.5), not {cores}.");
            }

            var quota = (long)Math.Round(cores * CpuPeriodMicroseconds);
            if (quota < MinCpuQuotaMicroseconds)
            {
                throw JobSpecValidator.Invalid($"Limits.CpuCores {cores} is below the kernel's minimum of 0.01 cores (cpu.max quota of 1 ms per 100 ms).");
            }

            if (cores > 4096)
            {
                throw JobSpecValidator.Invalid($"Limits.CpuCores {cores} is not a plausible number of cores (maximum 4096).");
            }

            writes.Add(("cpu", "cpu.max", string.Create(CultureInfo.InvariantCulture, $"{quota} {CpuPeriodMicroseconds}"), false));
        }

        if (limits.MemoryBytes is { } memory)
        {
            if (memory < MinMemoryBytes)
            {
                throw JobSpecValidator.Invalid($"Limits.MemoryBytes must be at least {MinMemoryBytes} (1 MiB), not {memory}.");
            }

            writes.Add(("memory", "memory.max", memory.ToString(CultureInfo.InvariantCulture), false));
            // No swap: the limit would otherwise be memory.max plus all the swap the host has.
            // Absent without swap accounting, where there is nothing to limit.
            writes.Add(("memory", "memory.swap.max", "0", true));
            // Kill the whole job on OOM instead of leaving a half-dead process tree.
            writes.Add(("memory", "memory.oom.group", "1", false));
        }

        if (limits.MaxProcesses is { } pids)
        {
            if (pids < 1)
            {
                throw JobSpecValidator.Invalid($"Limits.MaxProcesses must be at least 1, not {pids}.");
            }

            var max = pids > long.MaxValue - extraProcesses ? long.MaxValue : pids + extraProcesses;
            writes.Add(("pids", "pids.max", max.ToString(CultureInfo.InvariantCulture), false));
        }

        for (var i = 0; i < limits.Io.Count; i++)
        {
            var io = limits.Io[i] ?? throw JobSpecValidator.Invalid($"Limits.Io[{i}] is null.");
            var field = $"Limits.Io[{i}]";
            var parts = new List<string>();
            AddIo(parts, field, "ReadBytesPerSecond", "rbps", io.ReadBytesPerSecond);
            AddIo(parts, field, "WriteBytesPerSecond", "wbps", io.WriteBytesPerSecond);
            AddIo(parts, field, "ReadIops", "riops", io.ReadIops);
            AddIo(parts, field, "WriteIops", "wiops", io.WriteIops);
            if (parts.Count == 0)
            {
                throw JobSpecValidator.Invalid($"{field} for device '{io.Device}' sets no limit; set at least one of ReadBytesPerSecond, WriteBytesPerSecond, ReadIops, WriteIops.");
            }

            var device = BlockDevices.Resolve(io.Device, $"{field}.Device", sysfs);
            writes.Add(("io", "io.max", $"{device} {string.Join(' ', parts)}", false));
        }

        return new CgroupLimitPlan(writes);
    }

    /// <summary>
    /// The aggregate limits of a user's group. No <c>memory.oom.group</c> here: an OOM in the user's group kills the
    /// job it picks (each job's own group is an OOM group), never all of the user's jobs at once.
    /// </summary>
    /// <param name="limits">The limits.</param>
    /// <param name="setting">The option's name for messages, such as <c>UserLimits</c>.</param>
    /// <exception cref="ArgumentException">A value the kernel would reject; names the setting.</exception>
    public static CgroupLimitPlan CreateForUser(UserCgroupLimits limits, string setting)
    {
        ArgumentNullException.ThrowIfNull(limits);
        var writes = new List<(string, string, string, bool)>();
        if (limits.CpuCores is { } cores)
        {
            var quota = double.IsFinite(cores) ? (long)Math.Round(cores * CpuPeriodMicroseconds) : 0;
            if (quota < MinCpuQuotaMicroseconds || cores > 4096)
            {
                throw new ArgumentException($"{setting}.CpuCores must be between 0.01 and 4096 cores, not {cores}.", nameof(limits));
            }

            writes.Add(("cpu", "cpu.max", string.Create(CultureInfo.InvariantCulture, $"{quota} {CpuPeriodMicroseconds}"), false));
        }

        if (limits.CpuWeight is { } weight)
        {
            if (weight is < 1 or > 10_000)
            {
                throw new ArgumentException($"{setting}.CpuWeight must be between 1 and 10000 (the kernel's default is 100), not {weight}.", nameof(limits));
            }

            writes.Add(("cpu", "cpu.weight", weight.ToString(CultureInfo.InvariantCulture), false));
        }

        if (limits.MemoryBytes is { } memory)
        {
            if (memory < MinMemoryBytes)
            {
                throw new ArgumentException($"{setting}.MemoryBytes must be at least {MinMemoryBytes} (1 MiB), not {memory}.", nameof(limits));
            }

            writes.Add(("memory", "memory.max", memory.ToString(CultureInfo.InvariantCulture), false));
            writes.Add(("memory", "memory.swap.max", "0", true));
        }

        if (limits.MaxProcesses is { } pids)
        {
            if (pids < 1)
            {
                throw new ArgumentException($"{setting}.MaxProcesses must be at least 1, not {pids}.", nameof(limits));
            }

            writes.Add(("pids", "pids.max", pids.ToString(CultureInfo.InvariantCulture), false));
        }

        return new CgroupLimitPlan(writes);
    }

    private static void AddIo(List<string> parts, string field, string name, string key, long? value)
    {
        if (value is { } v)
        {
            if (v < 1)
            {
                throw JobSpecValidator.Invalid($"{field}.{name} must be positive, not {v}.");
            }

            parts.Add(string.Create(CultureInfo.InvariantCulture, $"{key}={v}"));
        }
    }
}
