using System.Runtime.InteropServices;

namespace JobWorker.Core;

internal static partial class Interop
{
    internal static partial class Sys
    {
        internal const int SIGKILL = 9;
        internal const int SIGTERM = 15;

        [LibraryImport(Libraries.Libc, EntryPoint = "read", SetLastError = true)]
        internal static unsafe partial nint Read(SafeHandle fd, byte* buffer, nuint count);

        [LibraryImport(Libraries.Libc, EntryPoint = "write", SetLastError = true)]
        internal static unsafe partial nint Write(SafeHandle fd, byte* buffer, nuint count);

        [LibraryImport(Libraries.Libc, EntryPoint = "kill", SetLastError = true)]
        internal static partial int Kill(int pid, int signal);

        [LibraryImport(Libraries.Libc, EntryPoint = "rmdir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int RemoveDirectory(string path);

        [LibraryImport(Libraries.Libc, EntryPoint = "mkdir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int MakeDirectory(string path, uint mode);

        [LibraryImport(Libraries.Libc, EntryPoint = "getpid")]
        internal static partial int GetPid();

        [LibraryImport(Libraries.Libc, EntryPoint = "gettid")]
        internal static partial int GetTid();

        internal const int PRIO_PROCESS = 0;

        /// <summary><c>setpriority(2)</c>; with <see cref="PRIO_PROCESS"/> and a thread id, Linux sets that thread's nice value alone.</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "setpriority", SetLastError = true)]
        internal static partial int SetPriority(int which, uint who, int priority);

        /// <summary>glibc's <c>struct statvfs</c> on 64-bit Linux.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal unsafe struct StatVfsBuffer
        {
            public ulong BlockSize;
            public ulong FragmentSize;
            public ulong Blocks;
            public ulong BlocksFree;
            public ulong BlocksAvailable;
            public ulong Files;
            public ulong FilesFree;
            public ulong FilesAvailable;
            public ulong FileSystemId;
            public ulong Flags;
            public ulong NameMax;
            public fixed int Spare[6];
        }

        [LibraryImport(Libraries.Libc, EntryPoint = "statvfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int StatVfs(string path, out StatVfsBuffer buffer);

        internal const int RLIMIT_NOFILE = 7;

        [StructLayout(LayoutKind.Sequential)]
        internal struct Rlimit
        {
            public ulong Current;
            public ulong Maximum;
        }

        [LibraryImport(Libraries.Libc, EntryPoint = "getrlimit", SetLastError = true)]
        internal static partial int GetRlimit(int resource, out Rlimit limit);
    }
}
