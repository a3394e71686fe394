using JobWorker.Protocol.V1;

namespace JobWorker.Cli.Formatting;

/// <summary>Maps the wire <see cref="JobStatus"/> to the CLI's JSON view.</summary>
internal static class JobViewMapper
{
    public static JobView ToView(JobStatus job) => new()
    {
        Id = job.JobId,
        Owner = job.Owner,
        Command = job.Command,
        Args = [.. job.Args],
        ArgsTruncated = job.ArgsTruncated ? true : null,
        State = StateName(job.State),
        Pid = job.Pid,
        ExitCode = job.HasExitCode ? job.ExitCode : null,
        Signal = job.HasSignal ? job.Signal : null,
        OomKilled = job.OomKilled,
        StartedAt = job.StartedAt?.ToDateTimeOffset(),
        EndedAt = job.EndedAt?.ToDateTimeOffset(),
        Limits = job.Limits is null ? null : new LimitsView
        {
            CpuCores = job.Limits.HasCpuCores ? job.Limits.CpuCores : null,
            MemoryBytes = job.Limits.HasMemoryBytes ? job.Limits.MemoryBytes : null,
            MaxProcesses = job.Limits.HasMaxProcesses ? job.Limits.MaxProcesses : null,
            Io = job.Limits.Io.Count == 0 ? null : [.. job.Limits.Io.Select(io => new IoLimitView
            {
                Device = io.Device,
                ReadBytesPerSecond = io.HasReadBytesPerSecond ? io.ReadBytesPerSecond : null,
                WriteBytesPerSecond = io.HasWriteBytesPerSecond ? io.WriteBytesPerSecond : null,
                ReadIops = io.HasReadIops ? io.ReadIops : null,
                WriteIops = io.HasWriteIops ? io.WriteIops : null,
            })],
        },
        Isolation = job.Isolation is null ? null : new IsolationView
        {
            Pid = job.Isolation.Pid,
            Mount = job.Isolation.Mount,
            Network = job.Isolation.Network,
            Ipc = job.Isolation.Ipc,
            Uts = job.Isolation.Uts,
        },
        Usage = job.Usage is null ? null : new UsageView
        {
            CpuUsageUsec = job.Usage.HasCpuUsageUsec ? job.Usage.CpuUsageUsec : null,
            CpuThrottledPeriods = job.Usage.HasCpuThrottledPeriods ? job.Usage.CpuThrottledPeriods : null,
            CpuThrottledUsec = job.Usage.HasCpuThrottledUsec ? job.Usage.CpuThrottledUsec : null,
            MemoryCurrentBytes = job.Usage.HasMemoryCurrentBytes ? job.Usage.MemoryCurrentBytes : null,
            MemoryPeakBytes = job.Usage.HasMemoryPeakBytes ? job.Usage.MemoryPeakBytes : null,
            OomKills = job.Usage.HasOomKills ? job.Usage.OomKills : null,
            IoReadBytes = job.Usage.HasIoReadBytes ? job.Usage.IoReadBytes : null,
            IoWriteBytes = job.Usage.HasIoWriteBytes ? job.Usage.IoWriteBytes : null,
            PidsCurrent = job.Usage.HasPidsCurrent ? job.Usage.PidsCurrent : null,
        },
        LogBytes = job.LogBytes,
        LogTruncated = job.LogTruncated,
        LogDroppedBytes = job.LogDroppedBytes,
        LogError = job.LogError.Length > 0 ? job.LogError : null,
    };

    public static string StateName(JobState state) => state switch
    {
        JobState.Running => "running",
        JobState.Exited => "exited",
        JobState.Signaled => "signaled",
        JobState.Stopped => "stopped",
        _ => "unknown",
    };
}
