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
            LogError = status.LogError ?? "",
        };
        result.Args.AddRange(spec.Arguments);
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
