namespace JobWorker.Core.Jobs;

/// <summary>The lifecycle state of a job.</summary>
public enum JobState
{
    /// <summary>The job's main process is running.</summary>
    Running,

    /// <summary>The main process exited by itself; <see cref="JobStatus.ExitCode"/> holds its code.</summary>
    Exited,

    /// <summary>The main process was killed by a signal it did not expect; <see cref="JobStatus.Signal"/> holds it.</summary>
    Signaled,

    /// <summary>The job ended because a stop was requested.</summary>
    Stopped,
}
