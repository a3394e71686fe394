namespace JobWorker.Core.Jobs;

/// <summary>Linux namespaces a job is isolated in.</summary>
[Flags]
public enum JobIsolation
{
    /// <summary>No isolation: the job shares the host's namespaces.</summary>
    None = 0,

    /// <summary>A new PID namespace: the job sees and signals only its own processes.</summary>
    Pid = 1,

    /// <summary>A new mount namespace with a fresh /proc, a private /tmp and the server's state hidden.</summary>
    Mount = 2,

    /// <summary>A new network namespace with only a loopback interface.</summary>
    Network = 4,

    /// <summary>
    /// A new IPC namespace: SysV IPC and POSIX message queues of its own; with <see cref="Mount"/> also a private
    /// <c>/dev/shm</c> (POSIX shared memory and semaphores are files there) and <c>/dev/mqueue</c>.
    /// </summary>
    Ipc = 8,

    /// <summary>A new UTS namespace: the job starts with the host's host name, and a change it makes stays its own.</summary>
    Uts = 16,

    /// <summary>All of the above.</summary>
    All = Pid | Mount | Network | Ipc | Uts,
}
