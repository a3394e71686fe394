using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Processes;

/// <summary>
/// Turns the spawn of a job into the spawn of its supervisor, <c>jobworker-shim</c> (native/jobworker_shim.c):
/// the shim runs the job's <see cref="SpawnRequest"/> itself, so the job's parent is the shim, not the server,
/// and the job outlives the server. See docs/design-durability.md.
/// </summary>
internal static class ShimLaunch
{
    private const string ShimName = "jobworker-shim";

    private static readonly Lazy<string?> ShimPathLazy = new(() => FindNextToApp(ShimName));

    /// <summary>The shim executable, shipped next to the spawn library; null when missing.</summary>
    public static string? ShimPath => ShimPathLazy.Value;

    /// <summary>
    /// The shim's request, in the form of an argv: <c>jobworker-shim 1 JOBDIR CGROUP LOGCAP EOFMS FLAGS NSFLAGS UID GID
    /// CWD N EXEC... N ARGV... N ENV...</c>. It travels in a memfd on the shim's stdin (<see cref="CreateRequest"/>),
    /// never in its argv: a root process's command line is readable by every user, and the job's environment may
    /// hold secrets. The shim itself runs with an empty environment.
    /// </summary>
    public static List<string> Request(SpawnRequest job, string jobDirectory, string jobCgroup, long logCapBytes, TimeSpan outputEofTimeout)
    {
        var flags = (job.NewSession ? Interop.Spawn.FlagSetsid : 0)
            | (job.Credentials is null ? 0 : Interop.Spawn.FlagSetCredentials)
            | (job.UseInit ? Interop.Spawn.FlagInit : 0)
            | (job.ForceFallback ? Interop.Spawn.FlagNoClone3 : 0);
        var argv = new List<string>(16 + job.ExecPaths.Count + job.Argv.Count + job.Environment.Count)
        {
            ShimName,
            "1",
            jobDirectory,
            jobCgroup,
            Number(logCapBytes),
            Number((long)outputEofTimeout.TotalMilliseconds),
            Number(flags),
            Number(job.NamespaceFlags),
            Number(job.Credentials?.Uid ?? 0),
            Number(job.Credentials?.Gid ?? 0),
            job.WorkingDirectory ?? string.Empty,
        };
        AddList(argv, job.ExecPaths);
        AddList(argv, job.Argv);
        AddList(argv, job.Environment);
        return argv;
    }

    /// <summary>A memfd holding <paramref name="request"/> as NUL-terminated UTF-8 strings, for the shim's stdin.</summary>
    /// <exception cref="IOException">The memfd cannot be created or written.</exception>
    public static SafeFileHandle CreateRequest(IReadOnlyList<string> request)
    {
        var fd = Interop.Files.MemfdCreate("jobworker-shim-request", Interop.Files.MFD_CLOEXEC);
        if (fd < 0)
        {
            throw Interop.CreateIOException(Marshal.GetLastPInvokeError(), "memfd_create");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            var bytes = new byte[request.Sum(s => System.Text.Encoding.UTF8.GetByteCount(s) + 1)];
            var offset = 0;
            foreach (var item in request)
            {
                offset += System.Text.Encoding.UTF8.GetBytes(item, bytes.AsSpan(offset));
                bytes[offset++] = 0;
            }

            RandomAccess.Write(handle, bytes, 0);
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
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

            return new Interop.Spawn.ShimReport { Step = (int)Interop.Spawn.Step.ShimState, Error = errno == 0 ? Interop.EIO : errno, Pid = -1 };
        }

        return report;
    }

    internal static string? FindNextToApp(string name)
    {
        // The build copies it next to libjobworker_spawn.so in the app directory (like the library itself).
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
