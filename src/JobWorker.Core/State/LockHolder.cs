using System.Globalization;
using System.Runtime.InteropServices;
using JobWorker.Core.Jobs;

namespace JobWorker.Core.State;

/// <summary>
/// Exclusive <c>flock(2)</c> locks that prove a server owns a directory, and the holder's name for the error when
/// another process owns it. A flock belongs to the open file description, so it is released when the last fd of it
/// closes, including when the holder dies; fds are close-on-exec so no spawned process inherits one.
/// </summary>
internal static class LockHolder
{
    /// <summary>
    /// Takes <c>LOCK_EX|LOCK_NB</c>; false when another open file description holds a lock on the file for longer than
    /// a short grace.
    /// </summary>
    /// <remarks>
    /// The grace covers a holder that is just letting go: a lock lives as long as any copy of its open file
    /// description, and a process forked (by anyone in the previous holder, before it exec'd) holds a copy until its
    /// exec closes it, microseconds to milliseconds after the holder itself closed the lock.
    /// </remarks>
    public static bool TryLockExclusive(SafeHandle fd, string path)
    {
        const int GraceAttempts = 20;
        var attempts = 0;
        while (true)
        {
            if (Interop.Locks.Flock(fd, Interop.Locks.LOCK_EX | Interop.Locks.LOCK_NB) == 0)
            {
                return true;
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno == Interop.Locks.EWOULDBLOCK)
            {
                if (++attempts >= GraceAttempts)
                {
                    return false;
                }

                Thread.Sleep(25);
                continue;
            }

            if (errno != Interop.EINTR)
            {
                throw Interop.CreateIOException(errno, "flock", path);
            }
        }
    }

    /// <summary>
    /// The error for a lock someone else holds: "State directory /x is in use by another JobWorker server (pid
    /// 1234, /usr/bin/jobworker-server). Stop it, or give this server its own state directory (StateDirectory)."
    /// </summary>
    public static JobWorkerException InUse(SafeHandle fd, string path, string what, string? optionName)
    {
        string holder;
        try
        {
            var (major, minor, inode) = Interop.Locks.Identify(fd, path);
            var pid = FindHolderPid(File.ReadLines("/proc/locks"), major, minor, inode);
            holder = pid is { } p ? Describe(p) : "holder not found in /proc/locks";
        }
        catch (IOException ex)
        {
            holder = $"holder unknown: {ex.Message}";
        }

        var option = optionName is null ? string.Empty : $" ({optionName})";
        return new JobWorkerException(
            $"{char.ToUpperInvariant(what[0])}{what[1..]} {path} is in use by another JobWorker server ({holder}). " +
            $"Stop it, or give this server its own {what}{option}.");
    }

    /// <summary>
    /// The pid holding a granted lock on the file <paramref name="major"/>:<paramref name="minor"/>:<paramref name="inode"/>
    /// in <c>/proc/locks</c> lines ("1: FLOCK  ADVISORY  WRITE 1234 00:26:15263 0 EOF"; waiters have "->" and are
    /// skipped; device numbers are hex, the inode decimal), or null when none is listed or its pid is not visible.
    /// </summary>
    internal static int? FindHolderPid(IEnumerable<string> procLocksLines, uint major, uint minor, ulong inode)
    {
        foreach (var line in procLocksLines)
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 6 || fields[1] == "->")
            {
                continue;
            }

            // fields: "1:" type mode access pid dev:dev:inode start end
            var id = fields[5].Split(':');
            if (id.Length == 3
                && uint.TryParse(id[0], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var ma) && ma == major
                && uint.TryParse(id[1], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var mi) && mi == minor
                && ulong.TryParse(id[2], NumberStyles.None, CultureInfo.InvariantCulture, out var ino) && ino == inode
                && int.TryParse(fields[4], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 0)
            {
                return pid;
            }
        }

        return null;
    }

    private static string Describe(int pid)
    {
        try
        {
            var exe = new FileInfo($"/proc/{pid}/exe").LinkTarget;
            return exe is null ? $"pid {pid}" : $"pid {pid}, {exe}";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The holder may have exited after its lock was listed, or be hidden from us.
            return $"pid {pid}";
        }
    }
}
