using Microsoft.Extensions.Logging;

namespace JobWorker.Core.Jobs;

/// <summary>What a runner logs about re-attaching to recorded jobs (event ids 100–199).</summary>
internal static partial class RunnerLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Re-attached to job {JobId} (pid {Pid}): its supervisor is running")]
    public static partial void Reattached(ILogger logger, Guid jobId, int pid);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Job {JobId} ended while no server ran; its recorded exit status is kept")]
    public static partial void EndedWhileAway(ILogger logger, Guid jobId);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "Job {JobId} lost its supervisor while no server ran (no exit status recorded): its remaining processes are killed and it is reported as killed by SIGKILL")]
    public static partial void SupervisorLost(ILogger logger, Guid jobId);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "State record {Path} cannot be read ({Reason}); it is left in place and not listed")]
    public static partial void RecordUnreadable(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 104, Level = LogLevel.Information, Message = "Removed the leftover cgroups {Path} of ended job {JobId}")]
    public static partial void RemovedLeftoverGroup(ILogger logger, Guid jobId, string path);

    [LoggerMessage(EventId = 105, Level = LogLevel.Warning, Message = "cgroup {Path} has no job record in {StateDirectory}: not created by this server, left untouched")]
    public static partial void ForeignGroup(ILogger logger, string path, string stateDirectory);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "The aggregate limits of user cgroup {Path} could not be updated ({Reason}); it keeps its earlier ones")]
    public static partial void UserLimitsNotApplied(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 107, Level = LogLevel.Information, Message = "Removed cgroup {Path}, made ahead of a start by an earlier server and left behind (it held no job)")]
    public static partial void RemovedGroupAhead(ILogger logger, string path);
}
