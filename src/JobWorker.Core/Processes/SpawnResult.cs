using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Processes;

/// <summary>A started process, or the step that failed with its errno.</summary>
internal readonly record struct SpawnResult(int Pid, SafeFileHandle? Pidfd, Interop.Spawn.Step FailedStep, int Errno, bool UsedClone3)
{
    public bool Succeeded => Pidfd is not null;
}
