using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Cgroups;

/// <summary>Reads and writes cgroup interface files with errno-precise errors.</summary>
internal static class CgroupFiles
{
    /// <summary>Writes <paramref name="value"/> in one write(2), as cgroup files require.</summary>
    public static unsafe int TryWrite(string path, string value)
    {
        var bytes = Encoding.ASCII.GetBytes(value);
        fixed (byte* p = bytes)
        {
            var r = Interop.Spawn.WriteFile(path, p, bytes.Length);
            return r < 0 ? -r : 0;
        }
    }

    public static void Write(string path, string value)
    {
        var errno = TryWrite(path, value);
        if (errno != 0)
        {
            throw Interop.CreateIOException(errno, $"writing '{value.Trim()}' to", path);
        }
    }

    /// <summary>
    /// The file's text, or null when it does not exist (the host does not offer it) or its cgroup was removed while
    /// it was read. Raw calls, and no exception for those cases: a status reads six files, which a host without some
    /// controllers lacks, and each thrown FileNotFoundException cost more than the whole read (docs/benchmarks-server.md).
    /// </summary>
    /// <exception cref="IOException">Any other error, naming the file and the errno.</exception>
    public static unsafe string? TryRead(string path)
    {
        int fd = Interop.Files.Open(path, Interop.Files.O_RDONLY | Interop.Files.O_CLOEXEC, 0);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno is Interop.ENOENT or Interop.ENOTDIR or Interop.ENODEV ? null : throw Interop.CreateIOException(errno, "reading", path);
        }

        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        var buffer = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            var length = 0;
            while (true)
            {
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                nint n;
                fixed (byte* p = &buffer[length])
                {
                    n = Interop.Io.Read(handle, p, buffer.Length - length);
                }

                if (n > 0)
                {
                    length += (int)n;
                    continue;
                }

                if (n == 0)
                {
                    return Encoding.UTF8.GetString(buffer, 0, length);
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno == Interop.EINTR)
                {
                    continue;
                }

                // ENODEV: the cgroup was removed between open and read (a job that just ended). Found by the server
                // tests: GetJob/StartJob of a job ending at that moment failed with Internal.
                return errno == Interop.ENODEV ? null : throw Interop.CreateIOException(errno, "reading", path);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A "key value" line's value from a flat-keyed file (cpu.stat, memory.events, cgroup.events).</summary>
    public static long? KeyedValue(string? content, string key)
    {
        if (content is null)
        {
            return null;
        }

        foreach (var line in content.AsSpan().EnumerateLines())
        {
            var space = line.IndexOf(' ');
            if (space > 0 && line[..space].SequenceEqual(key) && long.TryParse(line[(space + 1)..], out var value))
            {
                return value;
            }
        }

        return null;
    }

    /// <summary>A single-number file (memory.current, pids.current), or null.</summary>
    public static long? SingleValue(string path)
    {
        var content = TryRead(path);
        return content is not null && long.TryParse(content.AsSpan().Trim(), out var value) ? value : null;
    }

    /// <summary>The controllers listed in a cgroup.controllers or cgroup.subtree_control file.</summary>
    public static HashSet<string> ReadControllers(string path)
    {
        var content = TryRead(path) ?? string.Empty;
        return [.. content.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries)];
    }
}
