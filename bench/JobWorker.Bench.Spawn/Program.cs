using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using JobWorker.Bench.Spawn;
using JobWorker.Core;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Jobs;
using JobWorker.Core.Processes;
using Microsoft.Win32.SafeHandles;

// Spawn latency: spawn call → the target's main() (the target prints CLOCK_MONOTONIC first thing), and the
// round trip spawn call → exit observed (reaped). All mechanisms run interleaved in one process, so the C
// posix_spawn baseline sees the same machine state as the library.
//
//   dotnet run -c Release --project bench/JobWorker.Bench.Spawn -- [iterations] [warmup]
//   dotnet run -c Release --project bench/JobWorker.Bench.Spawn -- concurrent [jobs]
//   dotnet run -c Release --project bench/JobWorker.Bench.Spawn -- isolation [iterations] [warmup]
//     (full jobs without isolation, with PID+mount namespaces, the server's default, all five, network only)
//   dotnet run -c Release --project bench/JobWorker.Bench.Spawn -- store [records] [rounds] [directory]
//     (the state store: FileJobStore.Load of N records against reading the same files)
if (args.Length > 0 && args[0] == "store")
{
    StoreLoad.Run(
        args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10_000,
        args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 11,
        args.Length > 3 ? args[3] : "/var/tmp");
    return;
}

if (args.Length > 0 && args[0] == "concurrent")
{
    await Concurrent.RunAsync(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1000);
    return;
}

var isolationMode = args.Length > 0 && args[0] == "isolation";
args = isolationMode ? args[1..] : args;
var iterations = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 300;
var warmup = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 30;
var target = Path.Combine(AppContext.BaseDirectory, "bench-target");
var mount = CgroupMount.FindMountPoint() ?? throw new InvalidOperationException("no cgroup2 mount");
var suffix = Guid.NewGuid().ToString("N")[..8];
var spawnGroup = JobCgroup.Create(Path.Combine(mount, "jobworker-bench-" + suffix));
var logs = Path.Combine(Path.GetTempPath(), "jobworker-bench-logs-" + suffix);
var runner = JobRunner.Create(new JobRunnerOptions { CgroupRoot = Path.Combine(mount, "jobworker-bench-runner-" + suffix), StateDirectory = logs, Identity = new() { Mode = JobIdentityMode.SharedAccount } });
// The same runner with a uid of each owner's own (two owners, alternating), directories under /var/tmp.
var ownerLogs = Path.Combine(Path.GetTempPath(), "jobworker-bench-owner-logs-" + suffix);
var ownerDirectories = Path.Combine("/var/tmp", "jobworker-bench-users-" + suffix);
var ownerRunner = JobRunner.Create(new JobRunnerOptions
{
    CgroupRoot = Path.Combine(mount, "jobworker-bench-owner-" + suffix),
    StateDirectory = ownerLogs,
    Identity = new() { UserDirectoryRoot = ownerDirectories },
});
var ownerTurn = 0;
using var spawner = new ProcessSpawner();
using var devNull = File.OpenHandle("/dev/null");
using var cgroupFd = spawnGroup.OpenDirectory();
var nobody = UserAccount.Resolve("nobody", "nogroup");
List<string> env = ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"];

var mechanisms = new List<Mechanism>
{
    new("C posix_spawn (baseline)", () => Baseline.Run(target, env)),
    new("library: clone3 only", () => Library(cgroup: null, credentials: null)),
    new("library: clone3 + cgroup", () => Library(cgroupFd, credentials: null)),
    new("library: clone3 + uid/gid + setsid", () => Library(cgroup: null, (nobody.Uid, nobody.Gid))),
    new("library: clone3 + cgroup + uid/gid + setsid", () => Library(cgroupFd, (nobody.Uid, nobody.Gid))),
    new("library: clone3 + cgroup + uid/gid, fallback path (no clone3)", () => Library(cgroupFd, (nobody.Uid, nobody.Gid), fallback: true)),
    new("Process.Start (stdout redirected)", ProcessStart),
    new("JobRunner.Start (full job: cgroup, pipe, log, epoll)", () => RunnerJob(JobIsolation.None)),
    new("JobRunner.Start, per-owner uid (2 owners)", () => RunnerJob(JobIsolation.None, perOwner: true)),
};
if (isolationMode)
{
    mechanisms =
    [
        new("C posix_spawn (baseline)", () => Baseline.Run(target, env)),
        new("JobRunner.Start, no isolation", () => RunnerJob(JobIsolation.None)),
        new("JobRunner.Start, pid+mount (jobworker-init as PID 1)", () => RunnerJob(JobIsolation.Pid | JobIsolation.Mount)),
        new("JobRunner.Start, pid+mount+ipc+uts (the server's default)", () => RunnerJob(JobIsolation.Pid | JobIsolation.Mount | JobIsolation.Ipc | JobIsolation.Uts)),
        new("JobRunner.Start, all (pid+mount+ipc+uts+net)", () => RunnerJob(JobIsolation.All)),
        new("JobRunner.Start, mount only (init execs the target)", () => RunnerJob(JobIsolation.Mount)),
        new("JobRunner.Start, pid only", () => RunnerJob(JobIsolation.Pid)),
        new("library: clone3 + cgroup + init, no namespace", () => LibraryInit(0, "-")),
        new("library: clone3 + cgroup + init + pid namespace", () => LibraryInit(0x20000000, "p")),
        new("library: clone3 + cgroup + init that forks the target, no namespace", () => LibraryInit(0, "p")),
        new("library: clone3 + cgroup + pid namespace, init execs the target (PID 1)", () => LibraryInit(0x20000000, "-")),
        new("JobRunner.Start, net only", () => RunnerJob(JobIsolation.Network)),
    ];
}

try
{
    for (var i = 0; i < warmup; i++)
    {
        foreach (var m in mechanisms)
        {
            m.Invoke();
        }
    }

    foreach (var m in mechanisms)
    {
        m.Reset();
    }

    for (var i = 0; i < iterations; i++)
    {
        foreach (var m in mechanisms)
        {
            m.Record(m.Invoke());
        }
    }

    // Isolation mode: ratios against the same full job without isolation, measured in the same run.
    var baseline = mechanisms[isolationMode ? 1 : 0];
    var report = new StringBuilder();
    report.AppendLine(CultureInfo.InvariantCulture, $"{iterations} iterations per mechanism (after {warmup} warm-up rounds), interleaved; {Environment.ProcessorCount} CPUs; kernel {Environment.OSVersion.Version}");
    report.AppendLine();
    report.AppendLine("| mechanism | → main p50 | → main p90 | ratio p50 | round trip p50 | round trip p90 | ratio p50 |");
    report.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
    foreach (var m in mechanisms)
    {
        report.AppendLine(CultureInfo.InvariantCulture,
            $"| {m.Name} | {Ms(m.MainP(50))} | {Ms(m.MainP(90))} | {m.MainP(50) / baseline.MainP(50):0.00}× | {Ms(m.ExitP(50))} | {Ms(m.ExitP(90))} | {m.ExitP(50) / baseline.ExitP(50):0.00}× |");
    }

    Console.Write(report.ToString());
}
finally
{
    await runner.DisposeAsync();
    await ownerRunner.DisposeAsync();
    Directory.Delete(logs, recursive: true);
    Directory.Delete(ownerLogs, recursive: true);
    Directory.Delete(ownerDirectories, recursive: true);
    cgroupFd.Dispose();
    spawnGroup.TryRemove();
}

static string Ms(double ns) => (ns / 1e6).ToString("0.000 ms", CultureInfo.InvariantCulture);

(long Main, long Exit) Library(SafeFileHandle? cgroup, (uint, uint)? credentials, bool fallback = false)
{
    var (read, write) = Pipes.Create();
    using (read)
    {
        var t0 = Baseline.Now();
        SpawnResult result;
        using (write)
        {
            result = spawner.Spawn(new SpawnRequest
            {
                ExecPaths = [target],
                Argv = [target],
                Environment = env,
                Stdin = devNull,
                Output = write,
                Cgroup = cgroup,
                Credentials = credentials,
                NewSession = credentials is not null,
                ForceFallback = fallback,
            });
        }

        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"spawn failed at {result.FailedStep}: {result.Errno}");
        }

        using var pidfd = result.Pidfd!;
        _ = Interop.Spawn.PidfdWait(pidfd, 0, out _, out _);
        var t1 = Baseline.Now();
        return (Pipes.ReadTimestamp(read) - t0, t1 - t0);
    }
}

(long Main, long Exit) LibraryInit(ulong namespaces, string initFlags)
{
    var init = Path.Combine(AppContext.BaseDirectory, "jobworker-init");
    var (read, write) = Pipes.Create();
    var (statusRead, statusWrite) = Pipes.Create();
    using (read)
    using (statusRead)
    {
        var t0 = Baseline.Now();
        SpawnResult result;
        using (write)
        using (statusWrite)
        {
            result = spawner.Spawn(new SpawnRequest
            {
                ExecPaths = [init],
                Argv = ["jobworker-init", initFlags, nobody.Uid.ToString(CultureInfo.InvariantCulture), nobody.Gid.ToString(CultureInfo.InvariantCulture), "/", string.Empty, "1", target, target],
                Environment = env,
                Stdin = devNull,
                Output = write,
                Cgroup = cgroupFd,
                UseInit = true,
                NamespaceFlags = namespaces,
                StatusPipe = statusWrite,
            });
        }

        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"spawn failed at {result.FailedStep}: {result.Errno}");
        }

        using var pidfd = result.Pidfd!;
        _ = Interop.Spawn.PidfdWait(pidfd, 0, out _, out _);
        var t1 = Baseline.Now();
        return (Pipes.ReadTimestamp(read) - t0, t1 - t0);
    }
}

(long Main, long Exit) ProcessStart()
{
    var t0 = Baseline.Now();
    using var p = Process.Start(new ProcessStartInfo(target) { RedirectStandardOutput = true, UseShellExecute = false })!;
    var line = p.StandardOutput.ReadLine();
    p.WaitForExit();
    var t1 = Baseline.Now();
    return (long.Parse(line!, CultureInfo.InvariantCulture) - t0, t1 - t0);
}

(long Main, long Exit) RunnerJob(JobIsolation isolation, bool perOwner = false)
{
    var which = perOwner ? ownerRunner : runner;
    var owner = perOwner ? (ownerTurn++ % 2 == 0 ? "alice" : "bob") : null;
    var t0 = Baseline.Now();
    var job = which.Start(new JobSpec(target) { Isolation = isolation, Owner = owner });
    job.Completion.GetAwaiter().GetResult();
    var t1 = Baseline.Now();
    var main = long.Parse(File.ReadAllText(Path.Combine(which.Options.StateDirectory, "jobs", job.Id.ToString("N"), "output.log")), CultureInfo.InvariantCulture);
    which.Remove(job);
    return (main - t0, t1 - t0);
}

namespace JobWorker.Bench.Spawn
{
    internal sealed class Mechanism(string name, Func<(long Main, long Exit)> run)
    {
        private readonly List<long> _main = [];
        private readonly List<long> _exit = [];

        public string Name { get; } = name;

        public (long Main, long Exit) Invoke() => run();

        public void Reset()
        {
            _main.Clear();
            _exit.Clear();
        }

        public void Record((long Main, long Exit) sample)
        {
            _main.Add(sample.Main);
            _exit.Add(sample.Exit);
        }

        public double MainP(int p) => Percentile(_main, p);

        public double ExitP(int p) => Percentile(_exit, p);

        private static double Percentile(List<long> values, int p)
        {
            var sorted = values.Order().ToList();
            return sorted[Math.Min(sorted.Count - 1, (int)Math.Round(p / 100.0 * (sorted.Count - 1)))];
        }
    }

    internal static unsafe partial class Baseline
    {
        [LibraryImport("libbench_posix_spawn", EntryPoint = "bench_posix_spawn", StringMarshalling = StringMarshalling.Utf8)]
        private static partial int PosixSpawn(string path, byte** argv, byte** envp, int stdoutFd, out int pid);

        [LibraryImport("libbench_posix_spawn", EntryPoint = "bench_waitpid")]
        private static partial int WaitPid(int pid);

        [LibraryImport("libbench_posix_spawn", EntryPoint = "bench_now")]
        internal static partial long Now();

        public static (long Main, long Exit) Run(string target, List<string> env)
        {
            var (read, write) = Pipes.Create();
            using (read)
            {
                using var argv = new NativeStringArray([target]);
                using var envp = new NativeStringArray(env);
                var t0 = Now();
                int pid;
                using (write)
                {
                    var ok = false;
                    write.DangerousAddRef(ref ok);
                    try
                    {
                        var r = PosixSpawn(target, argv.Pointer, envp.Pointer, (int)write.DangerousGetHandle(), out pid);
                        if (r != 0)
                        {
                            throw new InvalidOperationException($"posix_spawn failed: {-r}");
                        }
                    }
                    finally
                    {
                        write.DangerousRelease();
                    }
                }

                _ = WaitPid(pid);
                var t1 = Now();
                return (Pipes.ReadTimestamp(read) - t0, t1 - t0);
            }
        }
    }

    internal static unsafe class Pipes
    {
        public static (SafeFileHandle Read, SafeFileHandle Write) Create()
        {
            var fds = stackalloc int[2];
            if (Interop.Spawn.Pipe(fds, 0) < 0)
            {
                throw new IOException("pipe failed");
            }

            return (new SafeFileHandle(fds[0], true), new SafeFileHandle(fds[1], true));
        }

        /// <summary>Reads the target's timestamp; it has exited, so the bytes are in the pipe already.</summary>
        public static long ReadTimestamp(SafeFileHandle read)
        {
            var buffer = stackalloc byte[64];
            var n = Interop.Sys.Read(read, buffer, 64);
            return long.Parse(new ReadOnlySpan<byte>(buffer, (int)n), CultureInfo.InvariantCulture);
        }
    }
}
