using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.State;

/// <summary>
/// An exclusive flock on a directory itself (an <c>O_RDONLY|O_DIRECTORY</c> fd), for directories where a lock file
/// cannot or should not be created, such as a cgroup root (cgroupfs supports flock on directories). Held until
/// <see cref="Dispose"/> or the death of the process.
/// </summary>
internal sealed class DirectoryLock : IDisposable
{
    private readonly SafeFileHandle _handle;

    private DirectoryLock(string path, SafeFileHandle handle)
    {
        Path = path;
        _handle = handle;
    }

    /// <summary>The locked directory.</summary>
    public string Path { get; }

    /// <summary>
    /// Locks <paramref name="path"/> or throws a <see cref="Jobs.JobWorkerException"/> naming the holder's pid and
    /// executable when another process (or another lock in this one) has it.
    /// </summary>
    /// <param name="path">An existing directory.</param>
    /// <param name="what">What the directory is, for the message ("cgroup root").</param>
    /// <param name="optionName">The setting that chooses the directory, for the message ("CgroupRoot").</param>
    /// <exception cref="IOException">The directory cannot be opened.</exception>
    public static DirectoryLock Acquire(string path, string what, string? optionName = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentException.ThrowIfNullOrEmpty(what);

        int fd = Interop.Files.Open(path, Interop.Files.O_RDONLY | Interop.Files.O_DIRECTORY | Interop.Files.O_CLOEXEC, 0);
        if (fd < 0)
        {
            throw Interop.CreateIOException(Marshal.GetLastPInvokeError(), $"Cannot open the {what}", path);
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            if (!LockHolder.TryLockExclusive(handle, path))
            {
                throw LockHolder.InUse(handle, path, what, optionName);
            }

            return new DirectoryLock(path, handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Releases the lock.</summary>
    public void Dispose() => _handle.Dispose();
}
