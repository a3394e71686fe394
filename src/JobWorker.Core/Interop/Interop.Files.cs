using System.Runtime.InteropServices;

namespace JobWorker.Core;

internal static partial class Interop
{
    /// <summary>The file calls the state store needs beyond <see cref="Io"/>: atomic replace and flushing.</summary>
    internal static partial class Files
    {
        internal const int O_RDONLY = 0x0;
        internal const int O_WRONLY = 0x1;
        internal const int O_RDWR = 0x2;
        internal const int O_CREAT = 0x40;
        internal const int O_EXCL = 0x80;
        internal const int O_TRUNC = 0x200;
        internal const int O_DIRECTORY = 0x10000;
        internal const int O_NOFOLLOW = 0x20000;
        internal const int O_CLOEXEC = 0x80000;
        internal const int EDQUOT = 122;

        [LibraryImport(Libraries.Libc, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int Open(string path, int flags, int mode);

        [LibraryImport(Libraries.Libc, EntryPoint = "pwrite", SetLastError = true)]
        internal static unsafe partial nint PWrite(SafeHandle fd, byte* buffer, nint count, long offset);

        [LibraryImport(Libraries.Libc, EntryPoint = "ftruncate", SetLastError = true)]
        internal static partial int Ftruncate(SafeHandle fd, long length);

        [LibraryImport(Libraries.Libc, EntryPoint = "fsync", SetLastError = true)]
        internal static partial int Fsync(SafeHandle fd);

        /// <summary><c>rename(2)</c>: atomically replaces <paramref name="newPath"/> when it exists.</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "rename", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int Rename(string oldPath, string newPath);

        internal const int AT_FDCWD = -100;
        internal const uint RENAME_NOREPLACE = 1;

        /// <summary><c>renameat2(2)</c>; with <see cref="RENAME_NOREPLACE"/> it fails with EEXIST instead of replacing.</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "renameat2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int RenameAt2(int oldDirectory, string oldPath, int newDirectory, string newPath, uint flags);

        [LibraryImport(Libraries.Libc, EntryPoint = "fchown", SetLastError = true)]
        internal static partial int Fchown(SafeHandle fd, uint uid, uint gid);

        [LibraryImport(Libraries.Libc, EntryPoint = "fchmod", SetLastError = true)]
        internal static partial int Fchmod(SafeHandle fd, uint mode);

        [LibraryImport(Libraries.Libc, EntryPoint = "unlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int Unlink(string path);
    }
}
