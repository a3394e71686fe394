using System.Runtime.InteropServices;

namespace JobWorker.Core;

internal static partial class Interop
{
    /// <summary><c>flock(2)</c> and the <c>statx(2)</c> fields that identify a locked file in <c>/proc/locks</c>.</summary>
    internal static partial class Locks
    {
        internal const int LOCK_EX = 2;
        internal const int LOCK_NB = 4;
        internal const int EWOULDBLOCK = EAGAIN;

        internal const int AT_FDCWD = -100;
        internal const int AT_SYMLINK_NOFOLLOW = 0x100;
        internal const int AT_EMPTY_PATH = 0x1000;
        internal const uint STATX_INO = 0x100;
        internal const uint STATX_BASIC_STATS = 0x7ff;

        /// <summary>The part of <c>struct statx</c> (256 bytes, fixed layout on every architecture) we read.</summary>
        [StructLayout(LayoutKind.Explicit, Size = 256)]
        internal struct Statx
        {
            [FieldOffset(0)]
            public uint Mask;

            [FieldOffset(20)]
            public uint Uid;

            [FieldOffset(24)]
            public uint Gid;

            [FieldOffset(28)]
            public ushort Mode;

            [FieldOffset(32)]
            public ulong Inode;

            [FieldOffset(136)]
            public uint DeviceMajor;

            [FieldOffset(140)]
            public uint DeviceMinor;
        }

        [LibraryImport(Libraries.Libc, EntryPoint = "flock", SetLastError = true)]
        internal static partial int Flock(SafeHandle fd, int operation);

        [LibraryImport(Libraries.Libc, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int StatxFd(SafeHandle fd, string path, int flags, uint mask, out Statx result);

        [LibraryImport(Libraries.Libc, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int StatxPath(int directoryFd, string path, int flags, uint mask, out Statx result);

        /// <summary>Device and inode of an open file (the identity <c>/proc/locks</c> prints).</summary>
        internal static (uint Major, uint Minor, ulong Inode) Identify(SafeHandle fd, string pathForMessages)
        {
            CheckIo(StatxFd(fd, string.Empty, AT_EMPTY_PATH, STATX_INO, out var st), "statx", pathForMessages);
            return (st.DeviceMajor, st.DeviceMinor, st.Inode);
        }

        /// <summary>Device and inode of a path, not following a final symlink; null when it does not exist.</summary>
        internal static (uint Major, uint Minor, ulong Inode)? Identify(string path)
        {
            if (StatxPath(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_INO, out var st) == 0)
            {
                return (st.DeviceMajor, st.DeviceMinor, st.Inode);
            }

            int errno = Marshal.GetLastPInvokeError();
            return errno == ENOENT ? null : throw CreateIOException(errno, "statx", path);
        }
    }
}
