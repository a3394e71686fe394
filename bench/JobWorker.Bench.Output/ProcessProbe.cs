using System.Diagnostics;
using System.Globalization;

namespace JobWorker.Bench.Output;

/// <summary>This process's resident memory and open fds, straight from /proc.</summary>
internal static class ProcessProbe
{
    public static long RssBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                var kib = line["VmRSS:".Length..].Trim().Split(' ')[0];
                return long.Parse(kib, CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException("no VmRSS in /proc/self/status");
    }

    public static int OpenFds() => Directory.GetFileSystemEntries("/proc/self/fd").Length;

    /// <summary>Runs <c>sh -c script</c> and returns its wall time; fails if it exits non-zero.</summary>
    public static async Task<TimeSpan> TimeShellAsync(string script)
    {
        var start = new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", script } };
        var stopwatch = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException("cannot start /bin/sh");
        await process.WaitForExitAsync();
        stopwatch.Stop();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"'{script}' exited with {process.ExitCode}");
        }

        return stopwatch.Elapsed;
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public static double Percentile(long[] sortedTicks, double percentile)
    {
        int index = (int)Math.Ceiling(percentile / 100 * sortedTicks.Length) - 1;
        return sortedTicks[Math.Clamp(index, 0, sortedTicks.Length - 1)] * 1000.0 / Stopwatch.Frequency;
    }
}
