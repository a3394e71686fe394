using System.Runtime.InteropServices;

namespace JobWorker.Core;

internal static partial class Interop
{
    internal static partial class Inotify
    {
        internal const int IN_CLOEXEC = 0x80000;
        internal const int IN_NONBLOCK = 0x800;
        internal const uint IN_MODIFY = 0x2;
        internal const uint IN_IGNORED = 0x8000;
        internal const uint IN_Q_OVERFLOW = 0x4000;

        [LibraryImport(Libraries.Libc, EntryPoint = "inotify_init1", SetLastError = true)]
        internal static partial int Init(int flags);

        [LibraryImport(Libraries.Libc, EntryPoint = "inotify_add_watch", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int AddWatch(SafeHandle fd, string path, uint mask);

        [LibraryImport(Libraries.Libc, EntryPoint = "inotify_rm_watch", SetLastError = true)]
        internal static partial int RemoveWatch(SafeHandle fd, int wd);
    }
}
