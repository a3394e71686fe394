using System.Globalization;
using System.Runtime.InteropServices;
using JobWorker.Core.Jobs;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Processes;

/// <summary>
/// Turns the spawn of a job into the spawn of its supervisor, <c>jobworker-shim</c> (native/jobworker_shim.c):
/// the shim runs the job's <see cref="SpawnRequest"/> itself, so the job's parent is the shim, not the server,
/// and the job outlives the server. See docs/design-durability.md.
/// </summary>
internal static class ShimLaunch
{
    internal const string ShimName = "jobworker-shim";

    private static readonly Lazy<string?> ShimPathLazy = new(() => FindNextToApp(ShimName));

    /// <summary>The shim executable, shipped next to the spawn library; null when missing.</summary>
    public static string? ShimPath => ShimPathLazy.Value;

    /// <summary>
    /// The shim's command line: <c>jobworker-shim 2 JOBDIR CGROUP LOGCAP EOFMS FLAGS NSFLAGS UID GID CWD NOFILE_SOFT
    /// NOFILE_HARD UMASK OOM_SCORE_ADJ NICE N EXEC... N ARGV...</c>. The job's environment is not among them (every
    /// user can read a process's command line): it goes to the shim's stdin, see <see cref="EnvironmentFile"/>.
    /// </summary>
    public static List<string> Argv(SpawnRequest job, string jobDirectory, string jobCgroup, long logCapBytes, TimeSpan outputEofTimeout)
    {
        var flags = (job.NewSession ? Interop.Spawn.FlagSetsid : 0)
            | (job.Credentials is null ? 0 : Interop.Spawn.FlagSetCredentials)
            | (job.UseInit ? Interop.Spawn.FlagInit : 0)
            | (job.ForceFallback ? Interop.Spawn.FlagNoClone3 : 0)
            | (job.StartState is null ? 0 : Interop.Spawn.FlagStartState);
        var state = job.StartState;
        var argv = new List<string>(20 + job.ExecPaths.Count + job.Argv.Count)
        {
            ShimName,
            "2",
            jobDirectory,
            jobCgroup,
            Number(logCapBytes),
            Number((long)outputEofTimeout.TotalMilliseconds),
            Number(flags),
            Number(job.NamespaceFlags),
            Number(job.Credentials?.Uid ?? 0),
            Number(job.Credentials?.Gid ?? 0),
            job.WorkingDirectory ?? string.Empty,
            Number(state?.OpenFilesSoft ?? 0),
            Number(state?.OpenFilesHard ?? 0),
            Number(state?.Umask ?? 0),
            Number(state?.OomScoreAdjust ?? 0),
            Number(state?.Nice ?? 0),
        };
        AddList(argv, job.ExecPaths);
        AddList(argv, job.Argv);
        return argv;
    }

    /// <summary>
    /// The job's environment for the shim's stdin: a sealed memfd (native <c>jw_env_fd</c>). The shim runs as root
    /// with an empty environment of its own, and its argv is readable by every user, so neither can carry it.
    /// </summary>
    public static unsafe SafeFileHandle EnvironmentFile(IReadOnlyList<string> environment)
    {
        using var envp = new NativeStringArray(environment);
        var fd = Interop.Spawn.EnvironmentFile(envp.Pointer);
        if (fd < 0)
        {
            throw new JobStartException(JobStartFailure.SpawnFailed, $"Cannot pass the job's environment to its supervisor (memfd): {Interop.Describe(-fd)}.", -fd);
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>
    /// Reads the shim's one report from the blocking read end of its stdout pipe. A shim that exits without one
    /// (killed, or a broken installation) reads as a failure of the shim step.
    /// </summary>
    public static unsafe Interop.Spawn.ShimReport ReadReport(SafeFileHandle pipe)
    {
        Interop.Spawn.ShimReport report = default;
        var buffer = new Span<byte>(&report, sizeof(Interop.Spawn.ShimReport));
        var got = 0;
        while (got < buffer.Length)
        {
            int n;
            fixed (byte* p = buffer[got..])
            {
                n = (int)Interop.Io.Read(pipe, p, buffer.Length - got);
            }

            if (n > 0)
            {
                got += n;
                continue;
            }

            var errno = n == 0 ? 0 : Marshal.GetLastPInvokeError();
            if (errno == Interop.EINTR)
            {
                continue;
            }

            // No report at all: the supervisor ended (or its pipe failed) before it said whether the job started.
            return new Interop.Spawn.ShimReport { Step = (int)Interop.Spawn.Step.ShimLost, Error = errno, Pid = -1 };
        }

        return report;
    }

    /// <summary>A native program shipped next to the spawn library (jobworker-shim, jobworker-init), or null.</summary>
    internal static string? FindNextToApp(string name)
    {
        // The build copies it next to libjobworker_spawn.so in the app directory (like the library itself, which is
        // found there too). Single-file apps extract native files there as well.
        var path = Path.Combine(AppContext.BaseDirectory, name);
        return File.Exists(path) ? Path.GetFullPath(path) : null;
    }

    private static void AddList(List<string> argv, IReadOnlyList<string> items)
    {
        argv.Add(Number(items.Count));
        argv.AddRange(items);
    }

    private static string Number<T>(T value)
        where T : IFormattable => value.ToString(null, CultureInfo.InvariantCulture);
}
