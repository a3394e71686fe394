using System.Globalization;
using System.Text;
using JobWorker.Protocol.V1;

namespace JobWorker.Cli.Formatting;

/// <summary>
/// Human output: a key/value block for one job, an aligned table for a list. Every text that comes from a request
/// (ids, owners, command lines, devices) is escaped (<see cref="TerminalText"/>), so no cell can hold a control
/// character and every row is one line.
/// </summary>
internal static class JobTable
{
    public static string Describe(JobStatus job, DateTimeOffset now)
    {
        var rows = new List<(string Key, string Value)>
        {
            ("ID", TerminalText.Escape(job.JobId)),
            ("Owner", TerminalText.Escape(job.Owner)),
            ("Command", HumanFormat.CommandLine(job.Command, job.Args)),
            ("State", StateText(job)),
        };
        if (job.Pid > 0)
        {
            rows.Add(("PID", job.Pid.ToString(CultureInfo.InvariantCulture)));
        }

        if (job.StartedAt is not null)
        {
            var started = job.StartedAt.ToDateTimeOffset();
            rows.Add(("Started", $"{started.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture)} ({HumanFormat.Duration(now - started)} ago)"));
            var ended = job.EndedAt?.ToDateTimeOffset();
            if (ended is not null)
            {
                rows.Add(("Ended", ended.Value.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture)));
            }

            rows.Add(("Duration", HumanFormat.Duration((ended ?? now) - started)));
        }

        var limits = LimitsText(job.Limits);
        rows.Add(("Limits", limits.Length == 0 ? "none" : limits));
        var isolation = IsolationText(job.Isolation);
        rows.Add(("Isolation", isolation.Length == 0 ? "none" : isolation));
        if (job.Usage is { } usage)
        {
            if (usage.HasCpuUsageUsec)
            {
                var cpu = HumanFormat.Duration(TimeSpan.FromMicroseconds(usage.CpuUsageUsec));
                if (usage.HasCpuThrottledPeriods && usage.CpuThrottledPeriods > 0)
                {
                    cpu += $" (throttled {usage.CpuThrottledPeriods} times, {HumanFormat.Duration(TimeSpan.FromMicroseconds(usage.CpuThrottledUsec))})";
                }

                rows.Add(("CPU time", cpu));
            }

            if (usage.HasMemoryCurrentBytes || usage.HasMemoryPeakBytes)
            {
                var memory = usage.HasMemoryCurrentBytes ? HumanFormat.Bytes(usage.MemoryCurrentBytes) : "-";
                if (usage.HasMemoryPeakBytes)
                {
                    memory += $" (peak {HumanFormat.Bytes(usage.MemoryPeakBytes)})";
                }

                rows.Add(("Memory", memory));
            }

            if (usage.HasIoReadBytes || usage.HasIoWriteBytes)
            {
                rows.Add(("I/O", $"read {HumanFormat.Bytes(usage.IoReadBytes)}, written {HumanFormat.Bytes(usage.IoWriteBytes)}"));
            }

            if (usage.HasPidsCurrent)
            {
                rows.Add(("Processes", usage.PidsCurrent.ToString(CultureInfo.InvariantCulture)));
            }
        }

        var output = HumanFormat.Bytes(job.LogBytes);
        if (job.LogError.Length > 0)
        {
            output += $" (log truncated: {TerminalText.Escape(job.LogError)}; {HumanFormat.Bytes(job.LogDroppedBytes)} dropped)";
        }
        else if (job.LogTruncated)
        {
            output += $" (log full: {HumanFormat.Bytes(job.LogDroppedBytes)} dropped)";
        }

        rows.Add(("Output", output));

        var width = rows.Max(r => r.Key.Length) + 2;
        var sb = new StringBuilder();
        foreach (var (key, value) in rows)
        {
            sb.Append((key + ":").PadRight(width)).Append(value).Append('\n');
        }

        return sb.ToString();
    }

    public static string List(IReadOnlyList<JobStatus> jobs, DateTimeOffset now)
    {
        var header = new[] { "ID", "OWNER", "STATE", "PID", "STARTED", "DURATION", "OUTPUT", "COMMAND" };
        var rows = new List<string[]> { header };
        foreach (var job in jobs.OrderBy(j => j.StartedAt?.ToDateTimeOffset() ?? DateTimeOffset.MinValue))
        {
            var started = job.StartedAt?.ToDateTimeOffset();
            var ended = job.EndedAt?.ToDateTimeOffset();
            rows.Add(
            [
                TerminalText.Escape(job.JobId),
                TerminalText.Escape(job.Owner),
                StateText(job),
                job.Pid > 0 ? job.Pid.ToString(CultureInfo.InvariantCulture) : "-",
                started is null ? "-" : HumanFormat.Duration(now - started.Value) + " ago",
                started is null ? "-" : HumanFormat.Duration((ended ?? now) - started.Value),
                HumanFormat.Bytes(job.LogBytes),
                HumanFormat.CommandLine(job.Command, job.Args) + (job.ArgsTruncated ? " …" : string.Empty),
            ]);
        }

        var widths = new int[header.Length];
        foreach (var row in rows)
        {
            for (var i = 0; i < row.Length; i++)
            {
                widths[i] = Math.Max(widths[i], row[i].Length);
            }
        }

        var sb = new StringBuilder();
        foreach (var row in rows)
        {
            for (var i = 0; i < row.Length; i++)
            {
                if (i == row.Length - 1)
                {
                    sb.Append(row[i]);
                }
                else
                {
                    sb.Append(row[i].PadRight(widths[i] + 2));
                }
            }

            sb.Append('\n');
        }

        return sb.ToString();
    }

    public static string StateText(JobStatus job)
    {
        var text = job.State switch
        {
            JobState.Running => "running",
            JobState.Exited => job.HasExitCode ? $"exited ({job.ExitCode})" : "exited",
            JobState.Signaled => job.HasSignal ? $"signaled ({SignalName(job.Signal)})" : "signaled",
            JobState.Stopped => job.HasSignal ? $"stopped ({SignalName(job.Signal)})" : job.HasExitCode ? $"stopped (exit {job.ExitCode})" : "stopped",
            _ => "unknown",
        };
        return job.OomKilled ? text + ", OOM-killed" : text;
    }

    public static string SignalName(int signal) => signal switch
    {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "signal " + signal.ToString(CultureInfo.InvariantCulture),
    };

    private static string LimitsText(ResourceLimits? limits)
    {
        if (limits is null)
        {
            return string.Empty;
        }

        var parts = new List<string>();
        if (limits.HasCpuCores)
        {
            parts.Add("cpu " + limits.CpuCores.ToString("0.###", CultureInfo.InvariantCulture));
        }

        if (limits.HasMemoryBytes)
        {
            parts.Add("memory " + HumanFormat.Bytes(limits.MemoryBytes));
        }

        if (limits.HasMaxProcesses)
        {
            parts.Add("pids " + limits.MaxProcesses.ToString(CultureInfo.InvariantCulture));
        }

        foreach (var io in limits.Io)
        {
            var items = new List<string>();
            if (io.HasReadBytesPerSecond)
            {
                items.Add("read " + HumanFormat.Bytes(io.ReadBytesPerSecond) + "/s");
            }

            if (io.HasWriteBytesPerSecond)
            {
                items.Add("write " + HumanFormat.Bytes(io.WriteBytesPerSecond) + "/s");
            }

            if (io.HasReadIops)
            {
                items.Add("read " + io.ReadIops.ToString(CultureInfo.InvariantCulture) + " iops");
            }

            if (io.HasWriteIops)
            {
                items.Add("write " + io.WriteIops.ToString(CultureInfo.InvariantCulture) + " iops");
            }

            parts.Add($"io {TerminalText.Escape(io.Device)} {string.Join(" ", items)}");
        }

        return string.Join(", ", parts);
    }

    private static string IsolationText(Isolation? isolation)
    {
        if (isolation is null)
        {
            return string.Empty;
        }

        var parts = new List<string>();
        if (isolation.Pid)
        {
            parts.Add("pid");
        }

        if (isolation.Mount)
        {
            parts.Add("mount");
        }

        if (isolation.Network)
        {
            parts.Add("net");
        }

        if (isolation.Ipc)
        {
            parts.Add("ipc");
        }

        if (isolation.Uts)
        {
            parts.Add("uts");
        }

        return string.Join(",", parts);
    }
}
