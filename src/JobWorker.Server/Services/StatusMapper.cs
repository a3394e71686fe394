using System.Runtime.CompilerServices;
using System.Text;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Google.Protobuf.WellKnownTypes;
using JobWorker.Core.Jobs;
using Proto = JobWorker.Protocol.V1;

namespace JobWorker.Server.Services;

/// <summary>Turns Core's job and status into the wire's <see cref="Proto.JobStatus"/>.</summary>
public static class StatusMapper
{
    /// <summary>Most UTF-8 bytes of args a ListJobs entry carries; GetJob returns them all.</summary>
    public const int ListArgsByteLimit = 1024;

    public static Proto.JobStatus ToProto(Job job) => ToProto(job, job.Status);

    // An ended job's entry never changes: encoded once per view, the bytes are copied into every later page
    // (ListJobsPage) and collected with the job.
    private static readonly ConditionalWeakTable<Job, byte[]> EndedBasicEntries = new();
    private static readonly ConditionalWeakTable<Job, byte[]> EndedFullEntries = new();

    /// <summary>
    /// A ListJobs entry, encoded: the status with at most <see cref="ListArgsByteLimit"/> bytes of args and, in the
    /// basic view, without limits, isolation and usage.
    /// </summary>
    /// <remarks>The encoding of an ended job is shared: callers must not modify it.</remarks>
    public static byte[] EncodeListEntry(Job job, bool full)
    {
        ArgumentNullException.ThrowIfNull(job);
        var cache = full ? EndedFullEntries : EndedBasicEntries;
        if (cache.TryGetValue(job, out var cached))
        {
            return cached;
        }

        var status = job.Status;
        var message = ToProto(job, status, ListArgsByteLimit);
        if (!full)
        {
            message.Limits = null;
            message.Isolation = null;
            message.Usage = null;
        }

        var entry = message.ToByteArray();
        if (status.HasEnded)
        {
            cache.TryAdd(job, entry);
        }

        return entry;
    }

    public static Proto.JobStatus ToProto(Job job, JobStatus status) => ToProto(job, status, argsByteLimit: null);

    private static Proto.JobStatus ToProto(Job job, JobStatus status, int? argsByteLimit)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(status);
        var spec = job.Spec;
        var result = new Proto.JobStatus
        {
            JobId = RequestValidator.FormatJobId(job.Id),
            Owner = spec.Owner ?? "",
            Command = spec.Command,
            State = status.State switch
            {
                JobState.Running => Proto.JobState.Running,
                JobState.Exited => Proto.JobState.Exited,
                JobState.Signaled => Proto.JobState.Signaled,
                JobState.Stopped => Proto.JobState.Stopped,
                _ => Proto.JobState.Unspecified,
            },
            Pid = status.Pid,
            OomKilled = status.OomKilled,
            StartedAt = Timestamp.FromDateTimeOffset(status.StartedAt),
            Limits = ToProto(spec.Limits),
            Usage = ToProto(status.Usage),
            LogBytes = status.LogBytes,
            LogTruncated = status.LogTruncated,
            LogDroppedBytes = status.LogDroppedBytes,
            LogError = status.LogError ?? "",
        };
        if (argsByteLimit is { } limit)
        {
            result.ArgsTruncated = AddArgsPrefix(result.Args, spec.Arguments, limit);
        }
        else
        {
            result.Args.AddRange(spec.Arguments);
        }

        SetIfPresent(status.ExitCode, v => result.ExitCode = v);
        SetIfPresent(status.Signal, v => result.Signal = v);
        SetIfPresent(status.EndedAt, ended => result.EndedAt = Timestamp.FromDateTimeOffset(ended));

        if (spec.Isolation is { } isolation)
        {
            result.Isolation = new Proto.Isolation
            {
                Pid = isolation.HasFlag(JobIsolation.Pid),
                Mount = isolation.HasFlag(JobIsolation.Mount),
                Network = isolation.HasFlag(JobIsolation.Network),
                Ipc = isolation.HasFlag(JobIsolation.Ipc),
                Uts = isolation.HasFlag(JobIsolation.Uts),
            };
        }

        return result;
    }

    /// <summary>
    /// Adds whole arguments while they fit in <paramref name="limit"/> UTF-8 bytes, then the part of the next one that
    /// fits (cut at a character boundary); returns whether anything was left out.
    /// </summary>
    internal static bool AddArgsPrefix(RepeatedField<string> target, IReadOnlyList<string> arguments, int limit)
    {
        var used = 0;
        foreach (var argument in arguments)
        {
            // UTF-8 needs at most 3 bytes per UTF-16 char: short arguments skip the count.
            var size = argument.Length * 3 <= limit - used ? -1 : Encoding.UTF8.GetByteCount(argument);
            if (size < 0 || used + size <= limit)
            {
                target.Add(argument);
                used += size < 0 ? Encoding.UTF8.GetByteCount(argument) : size;
                continue;
            }

            var cut = Utf8Prefix(argument, limit - used);
            if (cut > 0)
            {
                target.Add(argument[..cut]);
            }

            return true;
        }

        return false;
    }

    /// <summary>The number of chars of <paramref name="text"/> whose UTF-8 form fits in <paramref name="bytes"/>.</summary>
    private static int Utf8Prefix(string text, int bytes)
    {
        var used = 0;
        var i = 0;
        while (i < text.Length)
        {
            int chars = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            int size = chars == 2 ? 4 : text[i] < 0x80 ? 1 : text[i] < 0x800 ? 2 : 3;
            if (used + size > bytes)
            {
                break;
            }

            used += size;
            i += chars;
        }

        return i;
    }

    private static Proto.ResourceLimits ToProto(ResourceLimits limits)
    {
        var result = new Proto.ResourceLimits();
        SetIfPresent(limits.CpuCores, v => result.CpuCores = v);
        SetIfPresent(limits.MemoryBytes, v => result.MemoryBytes = v);
        SetIfPresent(limits.MaxProcesses, v => result.MaxProcesses = v);
        foreach (var io in limits.Io)
        {
            var limit = new Proto.IoLimit { Device = io.Device };
            SetIfPresent(io.ReadBytesPerSecond, v => limit.ReadBytesPerSecond = v);
            SetIfPresent(io.WriteBytesPerSecond, v => limit.WriteBytesPerSecond = v);
            SetIfPresent(io.ReadIops, v => limit.ReadIops = v);
            SetIfPresent(io.WriteIops, v => limit.WriteIops = v);
            result.Io.Add(limit);
        }

        return result;
    }

    private static Proto.ResourceUsage ToProto(JobUsage usage)
    {
        var result = new Proto.ResourceUsage();
        SetIfPresent(usage.CpuUsageMicroseconds, v => result.CpuUsageUsec = v);
        SetIfPresent(usage.CpuThrottledPeriods, v => result.CpuThrottledPeriods = v);
        SetIfPresent(usage.CpuThrottledMicroseconds, v => result.CpuThrottledUsec = v);
        SetIfPresent(usage.MemoryCurrentBytes, v => result.MemoryCurrentBytes = v);
        SetIfPresent(usage.MemoryPeakBytes, v => result.MemoryPeakBytes = v);
        SetIfPresent(usage.OomKills, v => result.OomKills = v);
        SetIfPresent(usage.IoReadBytes, v => result.IoReadBytes = v);
        SetIfPresent(usage.IoWriteBytes, v => result.IoWriteBytes = v);
        SetIfPresent(usage.PidsCurrent, v => result.PidsCurrent = v);
        return result;
    }

    // Proto3 optional fields: absent in Core (null) stays absent on the wire, never 0.
    private static void SetIfPresent<T>(T? value, Action<T> set)
        where T : struct
    {
        if (value is { } present)
        {
            set(present);
        }
    }
}
