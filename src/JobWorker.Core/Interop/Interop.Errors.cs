using System.Runtime.InteropServices;

namespace JobWorker.Core;

internal static partial class Interop
{
    internal const int EPERM = 1;
    internal const int ENOENT = 2;
    internal const int ESRCH = 3;
    internal const int EINTR = 4;
    internal const int EIO = 5;
    internal const int ENOEXEC = 8;
    internal const int EBADF = 9;
    internal const int ECHILD = 10;
    internal const int EAGAIN = 11;
    internal const int ENOMEM = 12;
    internal const int EACCES = 13;
    internal const int EBUSY = 16;
    internal const int EEXIST = 17;
    internal const int ENODEV = 19;
    internal const int ENOTDIR = 20;
    internal const int EISDIR = 21;
    internal const int EINVAL = 22;
    internal const int ENFILE = 23;
    internal const int EMFILE = 24;
    internal const int ETXTBSY = 26;
    internal const int ENOSPC = 28;
    internal const int EROFS = 30;
    internal const int ENAMETOOLONG = 36;
    internal const int ENOSYS = 38;
    internal const int ENOTEMPTY = 39;
    internal const int ELOOP = 40;
    internal const int ELIBBAD = 80;
    internal const int EOPNOTSUPP = 95;
    internal const int EDQUOT = 122;

    /// <summary>The symbolic name of an errno value, for messages ("ENOENT").</summary>
    internal static string ErrnoName(int errno) => errno switch
    {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        EIO => "EIO",
        ENOEXEC => "ENOEXEC",
        EBADF => "EBADF",
        ECHILD => "ECHILD",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENODEV => "ENODEV",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        ETXTBSY => "ETXTBSY",
        ENOSPC => "ENOSPC",
        EROFS => "EROFS",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        ENOTEMPTY => "ENOTEMPTY",
        ELOOP => "ELOOP",
        ELIBBAD => "ELIBBAD",
        EOPNOTSUPP => "EOPNOTSUPP",
        EDQUOT => "EDQUOT",
        _ => $"errno {errno}",
    };

    /// <summary>"No such file or directory (ENOENT)".</summary>
    internal static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} ({ErrnoName(errno)})";

    /// <summary>The one place errno becomes an exception: what failed, on which path, and why.</summary>
    internal static IOException CreateIOException(int errno, string operation, string? path = null)
    {
        var message = path is null
            ? $"{operation} failed: {Describe(errno)}"
            : $"{operation} '{path}' failed: {Describe(errno)}";
        return new IOException(message, errno);
    }

    /// <summary>Throws for a libc-style result (-1 with errno from the last P/Invoke error).</summary>
    internal static int CheckIo(int result, string operation, string? path = null)
    {
        if (result < 0)
        {
            throw CreateIOException(Marshal.GetLastPInvokeError(), operation, path);
        }

        return result;
    }

    /// <summary>Throws for a result of our C library (-errno on failure).</summary>
    internal static int CheckNegatedErrno(int result, string operation, string? path = null)
    {
        if (result < 0)
        {
            throw CreateIOException(-result, operation, path);
        }

        return result;
    }
}
