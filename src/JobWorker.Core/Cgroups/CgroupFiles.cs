using System.Text;

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

    /// <summary>The file's text, or null when it does not exist (the host does not offer it).</summary>
    public static string? TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
        catch (IOException e) when (e.HResult == 19)
        {
            // ENODEV: the cgroup was removed between open and read (a job that just ended). Found by the
            // server tests: GetJob/StartJob of a job ending at that moment failed with Internal.
            return null;
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
