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
            _ => (JobStartFailure.SpawnFailed, $"Starting the process failed at step {result.FailedStep}: {why}."),
        };
        return new JobStartException(reason, message, errno);
    }
}
