using System.Text;

namespace JobWorker.Core.Cgroups;

/// <summary>Finds the cgroup v2 hierarchy and this process's place in it.</summary>
internal static class CgroupMount
{
    /// <summary>The cgroup2 mount point from <c>/proc/self/mountinfo</c>, or null when there is none.</summary>
    public static string? FindMountPoint(string mountInfoPath = "/proc/self/mountinfo")
    {
        foreach (var line in File.ReadLines(mountInfoPath))
        {
            // "36 35 0:30 / /sys/fs/cgroup/unified rw,... shared:9 - cgroup2 cgroup2 rw,..." (proc(5)):
            // optional fields end at " - ", then the filesystem type.
            var separator = line.IndexOf(" - ", StringComparison.Ordinal);
            if (separator < 0)
            {
                continue;
            }

            var after = line[(separator + 3)..].Split(' ');
            if (after.Length == 0 || after[0] != "cgroup2")
            {
                continue;
            }

            var fields = line[..separator].Split(' ');
            if (fields.Length >= 5)
            {
                return Unescape(fields[4]);
            }
        }

        return null;
    }

    /// <summary>This process's cgroup v2 path relative to the mount ("/system.slice/x.service").</summary>
    public static string? FindOwnCgroup(string cgroupPath = "/proc/self/cgroup")
    {
        foreach (var line in File.ReadLines(cgroupPath))
        {
            if (line.StartsWith("0::", StringComparison.Ordinal))
            {
                return line[3..];
            }
        }

        return null;
    }

    // mountinfo escapes space, tab, newline and backslash as \ooo octal.
    private static string Unescape(string value)
    {
        if (!value.Contains('\\'))
        {
            return value;
        }

        var sb = new StringBuilder(value.Length);
        for (var i = 0; i < value.Length; i++)
        {
            if (value[i] == '\\' && IsOctal(value, i + 1))
            {
                sb.Append((char)Convert.ToInt32(value.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                sb.Append(value[i]);
            }
        }

        return sb.ToString();
    }

    private static bool IsOctal(string s, int start)
    {
        if (start + 3 > s.Length)
        {
            return false;
        }

        for (var i = start; i < start + 3; i++)
        {
            if (s[i] is < '0' or > '7')
            {
                return false;
            }
        }

        return true;
    }
}
