using System.Runtime.InteropServices;

namespace JobWorker.Core;

internal static partial class Interop
{
    internal static unsafe partial class Spawn
    {
        internal const uint FlagSetCredentials = 0x1;
        internal const uint FlagSetsid = 0x2;
        internal const uint FlagNoClone3 = 0x4;
        internal const uint FlagInit = 0x8;
        internal const uint FlagStartState = 0x10;

        /// <summary>Mirrors <c>struct jw_spawn_args</c> in native/jobworker_spawn.h.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct SpawnArgs
        {
            public uint Size;
            public uint Flags;
            public ulong NamespaceFlags;
            public byte** ExecPaths;
            public byte** Argv;
            public byte** Envp;
            public byte* Cwd;
            public int StdinFd;
            public int StdoutFd;
            public int StderrFd;
            public int CgroupFd;
            public uint Uid;
            public uint Gid;
            public int PdeathSignal;
            public int Pid;
            public int Pidfd;
            public int FailedStep;
            public int Error;
            public int UsedClone3;
            public int StatusFd;
            public int Reserved;
            public ulong NofileSoft;
            public ulong NofileHard;
            public uint Umask;
            public int OomScoreAdj;
            public int Nice;
            public int Reserved2;
        }

        /// <summary>Mirrors <c>enum jw_step</c>.</summary>
        internal enum Step
        {
            None = 0,
            Clone = 1,
            Signals = 2,
            Cgroup = 3,
            Setsid = 4,
            Stdio = 5,
            Setgroups = 6,
            Setgid = 7,
            Setuid = 8,
            NoNewPrivs = 9,
            Pdeathsig = 10,
            Chdir = 11,
            CloseFds = 12,
            Exec = 13,
            Args = 14,
            Namespaces = 15,
            Mount = 16,
            Network = 17,
            Fork = 18,
            ShimState = 19,
            ShimLog = 20,
            Rlimit = 21,
            OomScore = 22,
            Priority = 23,
            Affinity = 24,
            Keyring = 25,
            Environment = 26,
            ShimLost = 27,
        }

        /// <summary>Mirrors <c>struct jw_shim_report</c>: what jobworker-shim writes to its stdout once.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct ShimReport
        {
            public int Step;
            public int Error;
            public int Pid;
            public int UsedClone3;
            public long StartedAtNs;

            /// <summary>The supervisor of the job: the server's child to wait on (a pooled shim hands over to a copy).</summary>
            public int ShimPid;
            public int Reserved;
        }

        [LibraryImport(Libraries.Spawn, EntryPoint = "jw_spawn")]
        internal static partial int SpawnProcess(SpawnArgs* args);

        /// <summary>kind: 0 still running (nohang), 1 exited (code = exit code), 2 killed (code = signal).</summary>
        [LibraryImport(Libraries.Spawn, EntryPoint = "jw_pidfd_wait")]
        internal static partial int PidfdWait(SafeHandle pidfd, int nohang, out int kind, out int code);

        /// <summary>1 with kind/code like <see cref="PidfdWait"/> when jobworker-init reported its target's status, 0 when not, or -errno.</summary>
        [LibraryImport(Libraries.Spawn, EntryPoint = "jw_init_status")]
        internal static partial int InitStatus(SafeHandle fd, out int kind, out int code);

        [LibraryImport(Libraries.Spawn, EntryPoint = "jw_pidfd_send_signal")]
        internal static partial int PidfdSendSignal(SafeHandle pidfd, int signal);

        /// <summary>A close-on-exec pidfd for <paramref name="pid"/>, or -errno.</summary>
        [LibraryImport(Libraries.Spawn, EntryPoint = "jw_pidfd_open")]
        internal static partial int PidfdOpen(int pid);

        /// <summary>The strings of <paramref name="envp"/> in a sealed memfd (close-on-exec, offset 0), or -errno.</summary>
        [LibraryImport(Libraries.Spawn, EntryPoint = "jw_env_fd")]
        internal static partial int EnvironmentFile(byte** envp);

        [LibraryImport(Libraries.Spawn, EntryPoint = "jw_pipe")]
        internal static partial int Pipe(int* fds, int size);

        [LibraryImport(Libraries.Spawn, EntryPoint = "jw_open_directory", StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int OpenDirectory(string path);

        [LibraryImport(Libraries.Spawn, EntryPoint = "jw_write_file", StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int WriteFile(string path, byte* data, int length);
    }
}
