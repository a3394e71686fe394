using System.Diagnostics;
using System.Runtime.InteropServices;

namespace JobWorker.Bench.Cli;

/// <summary>Runs one process to completion and times it from just before spawn to just after exit.</summary>
internal sealed partial record ProcessTimer(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed, TimeSpan Cpu)
{
    private const int RusageChildren = -1;

    public static ProcessTimer Run(string path, IEnumerable<string> args, IReadOnlyDictionary<string, string> environment)
    {
        var psi = new ProcessStartInfo(path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment)
        {
            psi.Environment[name] = value;
        }

        // CPU time (user + sys) of the child from getrusage(RUSAGE_CHILDREN) before and after: runs are serial,
        // so the difference is this child's alone. Unlike wall time it hardly depends on the machine's load.
        var cpuBefore = ChildrenCpu();
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        var elapsed = clock.Elapsed;
        return new ProcessTimer(process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult(), elapsed, ChildrenCpu() - cpuBefore);
    }

    public ProcessTimer EnsureSuccess(string name)
        => ExitCode == 0 ? this : throw new InvalidOperationException($"{name} exited {ExitCode}: {Stderr}");

    private static TimeSpan ChildrenCpu()
    {
        if (GetRusage(RusageChildren, out var usage) != 0)
        {
            throw new InvalidOperationException($"getrusage failed: errno {Marshal.GetLastPInvokeError()}");
        }

        return TimeSpan.FromMicroseconds((usage.UserSec * 1_000_000) + usage.UserUsec + (usage.SysSec * 1_000_000) + usage.SysUsec);
    }

    [LibraryImport("libc", EntryPoint = "getrusage", SetLastError = true)]
    private static partial int GetRusage(int who, out Rusage usage);

    // struct rusage on x86_64/arm64 Linux: two timevals then 14 longs.
    [StructLayout(LayoutKind.Sequential)]
    private struct Rusage
    {
        public long UserSec;
        public long UserUsec;
        public long SysSec;
        public long SysUsec;
        public long MaxRss;
        public long IxRss;
        public long IdRss;
        public long IsRss;
        public long MinFlt;
        public long MajFlt;
        public long NSwap;
        public long InBlock;
        public long OuBlock;
        public long MsgSnd;
        public long MsgRcv;
        public long NSignals;
        public long NVCsw;
        public long NIvCsw;
    }
}
