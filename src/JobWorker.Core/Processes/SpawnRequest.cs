using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Processes;

/// <summary>Everything the C library needs to start one process.</summary>
internal sealed record SpawnRequest
{
    /// <summary>Executables to try in order (the PATH lookup result).</summary>
    public required IReadOnlyList<string> ExecPaths { get; init; }

    public required IReadOnlyList<string> Argv { get; init; }

    public required IReadOnlyList<string> Environment { get; init; }

    public string? WorkingDirectory { get; init; }

    public required SafeFileHandle Stdin { get; init; }

    /// <summary>Write end of the output pipe: both stdout and stderr.</summary>
    public required SafeFileHandle Output { get; init; }

    /// <summary>Directory fd of the job's cgroup, or null to stay in the caller's cgroup.</summary>
    public SafeFileHandle? Cgroup { get; init; }

    /// <summary>Uid and gid, or null to keep the server's credentials.</summary>
    public (uint Uid, uint Gid)? Credentials { get; init; }

    public bool NewSession { get; init; } = true;

    /// <summary>Signal the child gets when the spawning thread dies (<c>PR_SET_PDEATHSIG</c>); 0 for none.</summary>
    public int ParentDeathSignal { get; init; } = Interop.Sys.SIGKILL;

    /// <summary>CLONE_NEW* flags for the clone3 call; non-zero only with <see cref="UseInit"/>.</summary>
    public ulong NamespaceFlags { get; init; }

    /// <summary>ExecPaths/Argv start jobworker-init, which sets the namespaces up and starts the target.</summary>
    public bool UseInit { get; init; }

    /// <summary>Write end of the init's status pipe (PID namespace only), or null.</summary>
    public SafeFileHandle? StatusPipe { get; init; }

    /// <summary>What the process starts with instead of the spawner's state (<c>JW_SPAWN_START_STATE</c>), or null to inherit it.</summary>
    public ProcessStartState? StartState { get; init; }

    /// <summary>Force the fallback path (clone + join cgroup from the child); for tests and benchmarks.</summary>
    public bool ForceFallback { get; init; }
}
