using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core;

internal static partial class Interop
{
    /// <summary>
    /// The raw file and pipe calls the output log needs. Raw <c>read(2)</c>/<c>pwrite(2)</c> rather than
    /// streams: the log must see EAGAIN, EOF and ENOSPC as values, not exceptions, and must know exactly how
    /// many bytes reached the file.
    /// </summary>
    internal static partial class Io
    {
        internal const int EINTR = 4;
        internal const int EAGAIN = 11;
        internal const int EEXIST = 17;
        internal const int EFBIG = 27;
        internal const int ENOSPC = 28;
        internal const int EDQUOT = 122;

        internal const int O_RDONLY = 0x0;
        internal const int O_RDWR = 0x2;
        internal const int O_CREAT = 0x40;
        internal const int O_EXCL = 0x80;
        internal const int O_NONBLOCK = 0x800;
        internal const int O_NOFOLLOW = 0x20000;
        internal const int O_CLOEXEC = 0x80000;

        internal const int F_SETPIPE_SZ = 1031;
        internal const int F_GETPIPE_SZ = 1032;

        [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
        internal static unsafe partial nint Read(SafeHandle fd, byte* buffer, nint count);

        [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
        internal static unsafe partial nint Write(SafeHandle fd, byte* buffer, nint count);

        [LibraryImport("libc", EntryPoint = "pwrite", SetLastError = true)]
        internal static unsafe partial nint PWrite(SafeHandle fd, byte* buffer, nint count, long offset);

        [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial int Open(string path, int flags, int mode);

        [LibraryImport("libc", EntryPoint = "pipe2", SetLastError = true)]
        internal static unsafe partial int Pipe2(int* fds, int flags);

        internal const short POLLIN = 0x1;

        [StructLayout(LayoutKind.Sequential)]
        internal struct PollFd
        {
            public int Fd;
            public short Events;
            public short REvents;
        }

        [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
        internal static unsafe partial int Poll(PollFd* fds, nuint count, int timeoutMilliseconds);

        [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
        internal static partial int Fcntl(SafeHandle fd, int command, int argument);

        private const nuint FIONREAD = 0x541B;

        [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
        private static partial int Ioctl(SafeHandle fd, nuint request, out int value);

        /// <summary>Bytes waiting in a pipe (<c>FIONREAD</c>); 0 if that cannot be told.</summary>
        internal static int BytesAvailable(SafeHandle pipe) => Ioctl(pipe, FIONREAD, out var count) == 0 ? count : 0;

        /// <summary>Creates a pipe whose ends are close-on-exec; <paramref name="flags"/> adds e.g. <see cref="O_NONBLOCK"/>.</summary>
        internal static unsafe (SafeFileHandle Read, SafeFileHandle Write) CreatePipe(int flags = 0)
        {
            int* fds = stackalloc int[2];
            if (Pipe2(fds, O_CLOEXEC | flags) != 0)
            {
                throw ErrnoException(Marshal.GetLastPInvokeError(), "pipe2");
            }

            return (new SafeFileHandle(fds[0], ownsHandle: true), new SafeFileHandle(fds[1], ownsHandle: true));
        }

        internal static IOException ErrnoException(int errno, string call)
            => new($"{call} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).", errno);
    }
}
