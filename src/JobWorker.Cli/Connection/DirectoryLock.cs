using System.Runtime.InteropServices;
using JobWorker.Cli.Infrastructure;

namespace JobWorker.Cli.Connection;

/// <summary>
/// An exclusive advisory lock (flock) on a directory, held until disposed. The client config file is replaced by a
/// rename on every write, so the file itself cannot carry the lock; its directory can, and no lock file is left behind.
/// </summary>
internal sealed partial class DirectoryLock : IDisposable
{
    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000;
    private const int OCloexec = 0x80000;
    private const int LockEx = 2;
    private const int LockNb = 4;
    private const int LockUn = 8;
    private const int EIntr = 4;
    private const int EWouldBlock = 11;

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private int _fd;

    private DirectoryLock(int fd) => _fd = fd;

    /// <summary>Takes the lock, waiting up to 10 s for another process that holds it.</summary>
    /// <exception cref="CliException">The directory cannot be opened, or the lock was not free within 10 s.</exception>
    public static DirectoryLock Take(string directory, string forWhat)
    {
        var fd = open(directory, ORdOnly | ODirectory | OCloexec);
        if (fd < 0)
        {
            throw new CliException($"cannot open {directory} to lock {forWhat}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }

        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (flock(fd, LockEx | LockNb) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == EIntr || (errno == EWouldBlock && waited.Elapsed < Patience))
            {
                Thread.Sleep(errno == EIntr ? 0 : 10);
                continue;
            }

            _ = close(fd);
            throw new CliException(errno == EWouldBlock
                ? $"another worker command has been changing {forWhat} for {Patience.TotalSeconds:0} s; try again"
                : $"cannot lock {forWhat}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }

        return new DirectoryLock(fd);
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            _ = flock(fd, LockUn);
            _ = close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int flock(int fd, int operation);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int close(int fd);
}
