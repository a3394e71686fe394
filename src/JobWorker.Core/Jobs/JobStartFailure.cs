namespace JobWorker.Core.Jobs;

/// <summary>Why a job could not be started.</summary>
public enum JobStartFailure
{
    /// <summary>The executable does not exist (ENOENT), or was not found in PATH.</summary>
    ExecutableNotFound,

    /// <summary>The executable or a directory on its path may not be executed by the job's user (EACCES/EPERM).</summary>
    PermissionDenied,

    /// <summary>The file is not a valid executable (ENOEXEC and similar).</summary>
    NotExecutable,

    /// <summary>The working directory does not exist or is not accessible to the job's user.</summary>
    BadWorkingDirectory,

    /// <summary>The configured job user or group, or the account an owner is mapped to, does not exist.</summary>
    UserNotFound,

    /// <summary>The job's cgroup could not be created, configured or joined.</summary>
    CgroupError,

    /// <summary>Namespaces for isolation could not be set up.</summary>
    IsolationFailed,

    /// <summary>The kernel refused to create the process (for example EAGAIN or ENOMEM).</summary>
    SpawnFailed,

    /// <summary>The job could not be recorded in the state directory (for example the disk is full).</summary>
    StateError,

    /// <summary>Every id of the per-owner range is allocated: a new owner cannot get a uid of its own.</summary>
    UserIdsExhausted,

    /// <summary>The job's supervisor ended (was killed) before it reported whether the job started; the start is undone.</summary>
    SupervisorLost,
}
