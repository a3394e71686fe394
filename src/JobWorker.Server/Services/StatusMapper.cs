using Google.Protobuf.WellKnownTypes;
using JobWorker.Core.Jobs;
using Proto = JobWorker.Protocol.V1;

namespace JobWorker.Server.Services;

/// <summary>Turns Core's job and status into the wire's <see cref="Proto.JobStatus"/>.</summary>
public static class StatusMapper
{
    public static Proto.JobStatus ToProto(Job job) => ToProto(job, job.Status);

    public static Proto.JobStatus ToProto(Job job, JobStatus status)
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
        };
        result.Args.AddRange(spec.Arguments);
        if (status.ExitCode is { } code)
        {
            result.ExitCode = code;
        }

        if (status.Signal is { } signal)
        {
            result.Signal = signal;
        }

        if (status.EndedAt is { } ended)
        {
            result.EndedAt = Timestamp.FromDateTimeOffset(ended);
        }

        if (spec.Isolation is { } isolation)
        {
            result.Isolation = new Proto.Isolation
            {
                Pid = isolation.HasFlag(JobIsolation.Pid),
                Mount = isolation.HasFlag(JobIsolation.Mount),
                Network = isolation.HasFlag(JobIsolation.Network),
            };
        }

        return result;
    }

    private static Proto.ResourceLimits ToProto(ResourceLimits limits)
    {
        var result = new Proto.ResourceLimits();
        if (limits.CpuCores is { } cpu)
        {
            result.CpuCores = cpu;
        }

        if (limits.MemoryBytes is { } memory)
        {
            result.MemoryBytes = memory;
        }

        if (limits.MaxProcesses is { } processes)
        {
            result.MaxProcesses = processes;
        }

        foreach (var io in limits.Io)
        {
            var limit = new Proto.IoLimit { Device = io.Device };
            if (io.ReadBytesPerSecond is { } rbps)
            {
                limit.ReadBytesPerSecond = rbps;
            }

            if (io.WriteBytesPerSecond is { } wbps)
            {
                limit.WriteBytesPerSecond = wbps;
            }

            if (io.ReadIops is { } riops)
            {
                limit.ReadIops = riops;
            }

            if (io.WriteIops is { } wiops)
            {
                limit.WriteIops = wiops;
            }

            result.Io.Add(limit);
        }

        return result;
    }

    private static Proto.ResourceUsage ToProto(JobUsage usage)
    {
        var result = new Proto.ResourceUsage();
        if (usage.CpuUsageMicroseconds is { } cpu)
        {
            result.CpuUsageUsec = cpu;
        }

        if (usage.CpuThrottledPeriods is { } periods)
        {
            result.CpuThrottledPeriods = periods;
        }

        if (usage.CpuThrottledMicroseconds is { } throttled)
        {
            result.CpuThrottledUsec = throttled;
        }

        if (usage.MemoryCurrentBytes is { } current)
        {
            result.MemoryCurrentBytes = current;
        }

        if (usage.MemoryPeakBytes is { } peak)
        {
            result.MemoryPeakBytes = peak;
        }

        if (usage.OomKills is { } oom)
        {
            result.OomKills = oom;
        }

        if (usage.IoReadBytes is { } read)
        {
            result.IoReadBytes = read;
        }

        if (usage.IoWriteBytes is { } write)
        {
            result.IoWriteBytes = write;
        }

        if (usage.PidsCurrent is { } pids)
        {
            result.PidsCurrent = pids;
        }

        return result;
    }
}
