using JobWorker.Core.Jobs;

namespace JobWorker.Core.Processes;

/// <summary>Turns the C library's failed step and errno into a <see cref="JobStartException"/>.</summary>
internal static class SpawnFailure
{
    public static JobStartException ToException(SpawnResult result, JobSpec spec, UserAccount account)
    {
        var errno = result.Errno;
        var why = Interop.Describe(errno);
        var (reason, message) = result.FailedStep switch
        {
            Interop.Spawn.Step.Exec => errno switch
            {
                Interop.ENOENT or Interop.ENOTDIR => (JobStartFailure.ExecutableNotFound,
                    spec.Command.Contains('/')
                        ? $"Executable '{spec.Command}' not found ({Interop.ErrnoName(errno)})."
                        : $"Executable '{spec.Command}' not found in the job's PATH ({Interop.ErrnoName(errno)})."),
                Interop.EACCES or Interop.EPERM => (JobStartFailure.PermissionDenied,
                    $"Executable '{spec.Command}' may not be executed by user {account.Name} (uid {account.Uid}): {why}. Check the file's execute bit and the directories on its path."),
                Interop.ENOEXEC or Interop.ELIBBAD or Interop.EISDIR or Interop.ETXTBSY or Interop.ELOOP => (JobStartFailure.NotExecutable,
                    $"'{spec.Command}' is not an executable program: {why}."),
                _ => (JobStartFailure.SpawnFailed, $"execve of '{spec.Command}' failed: {why}."),
            },
            Interop.Spawn.Step.Chdir => (JobStartFailure.BadWorkingDirectory,
                $"Working directory '{spec.WorkingDirectory ?? "/"}' cannot be entered by user {account.Name} (uid {account.Uid}): {why}."),
            Interop.Spawn.Step.Cgroup => (JobStartFailure.CgroupError, $"The job could not be placed in its cgroup: {why}."),
            Interop.Spawn.Step.Namespaces => (JobStartFailure.IsolationFailed, $"The job's namespaces could not be created: {why}. Isolation needs a server running as root (CAP_SYS_ADMIN)."),
            Interop.Spawn.Step.Mount => (JobStartFailure.IsolationFailed, $"The job's mount namespace could not be set up (private /tmp, fresh /proc, hidden log directory): {why}."),
            Interop.Spawn.Step.Network => (JobStartFailure.IsolationFailed, $"The loopback interface of the job's network namespace could not be brought up: {why}."),
            Interop.Spawn.Step.Setgroups or Interop.Spawn.Step.Setgid or Interop.Spawn.Step.Setuid => (JobStartFailure.SpawnFailed,
                $"Switching to user {account.Name} (uid {account.Uid}, gid {account.Gid}) failed at {result.FailedStep.ToString().ToLowerInvariant()}: {why}. The server must run as root to start jobs as another user."),
            Interop.Spawn.Step.Keyring => (JobStartFailure.SpawnFailed, errno == Interop.EDQUOT
                ? $"The job's session keyring could not be created: user {account.Name} (uid {account.Uid}) has used its kernel key quota ({why}). Every running job holds one keyring charged to its user; raise kernel.keys.maxkeys, or see docs/operations.md (KeyringMode=inherit)."
                : $"The job's session keyring could not be created (KEYCTL_JOIN_SESSION_KEYRING): {why}."),
            Interop.Spawn.Step.Rlimit or Interop.Spawn.Step.OomScore or Interop.Spawn.Step.Priority or Interop.Spawn.Step.Affinity => (JobStartFailure.SpawnFailed,
                $"Setting the job's start state failed at {result.FailedStep} ({StartStateStep(result.FailedStep)}): {why}.{StartStateHint(result.FailedStep, errno)}"),
            Interop.Spawn.Step.Clone when errno == Interop.EAGAIN => (JobStartFailure.SpawnFailed, ProcessLimitReached(why)),
            _ => (JobStartFailure.SpawnFailed, $"Starting the process failed at step {result.FailedStep}: {why}."),
        };
        return new JobStartException(reason, message, errno);
    }

    /// <summary>EAGAIN from clone: a pids.max above the job (its user's group) or the system's pid limit is reached.</summary>
    public static string ProcessLimitReached(string why)
        => $"The job's process could not be created: {why}. The job's user has reached the process limit of its cgroup (pids.max of <root>/users/<user>), or the system its pid limit; stop some of the user's jobs and try again.";

    private static string StartStateHint(Interop.Spawn.Step step, int errno) => (step, errno) switch
    {
        (Interop.Spawn.Step.OomScore, Interop.EACCES or Interop.EPERM) => " An OomScoreAdjust below the server's own oom_score_adj needs CAP_SYS_RESOURCE, which the server lacks; configure a value at or above the server's.",
        (Interop.Spawn.Step.Rlimit, Interop.EPERM) => " An OpenFilesHardLimit above the server's own hard limit needs CAP_SYS_RESOURCE, which the server lacks; lower it or raise the server's (systemd LimitNOFILE=).",
        (Interop.Spawn.Step.Priority, Interop.EACCES or Interop.EPERM) => " A Nice value below the server's own needs CAP_SYS_NICE, which the server lacks.",
        _ => string.Empty,
    };

    private static string StartStateStep(Interop.Spawn.Step step) => step switch
    {
        Interop.Spawn.Step.Rlimit => "setrlimit RLIMIT_NOFILE",
        Interop.Spawn.Step.OomScore => "/proc/self/oom_score_adj",
        Interop.Spawn.Step.Priority => "scheduling policy, nice or I/O priority",
        _ => "sched_setaffinity",
    };
}
