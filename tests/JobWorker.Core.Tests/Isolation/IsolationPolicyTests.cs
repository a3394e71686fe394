using System.Globalization;
using System.Runtime.InteropServices;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Isolation;

/// <summary>
/// The runner's minimum isolation, the IPC and UTS namespaces and the mount propagation of an isolated job: real
/// namespaces, real mounts (the tests run as root, like the server).
/// </summary>
public sealed partial class IsolationPolicyTests
{
    private const JobIsolation Standard = JobIsolation.Pid | JobIsolation.Mount | JobIsolation.Ipc | JobIsolation.Uts;
    private const int IPC_CREAT = 0x200;
    private const int IPC_RMID = 0;
    private const ulong MS_SHARED = 1 << 20;
    private const int MNT_DETACH = 2;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static JobSpec Shell(string script, JobIsolation? isolation) => new("/bin/sh", ["-c", script]) { Isolation = isolation };

    private static async Task<string> RunAsync(TestRunner t, JobSpec spec)
    {
        var job = t.Runner.Start(spec);
        var status = await job.Completion.WaitAsync(Ct);
        return t.Output(job) + $"[{status.State} {status.ExitCode} {status.Signal}]";
    }

    [Theory(Timeout = 60_000)]
    [InlineData(-1)] // the spec does not choose
    [InlineData((int)JobIsolation.None)]
    [InlineData((int)(JobIsolation.Pid | JobIsolation.Network))]
    public async Task Start_SpecBelowRequiredIsolation_RequiredAddedRecordedAndKeptAcrossRestart(int asked)
    {
        JobIsolation? requested = asked < 0 ? null : (JobIsolation)asked;
        await using var t = TestRunner.Create(o => o with { DefaultIsolation = JobIsolation.None, RequiredIsolation = Standard });

        var job = t.Runner.Start(Shell("echo pid=$$; readlink /proc/self/ns/ipc /proc/self/ns/uts", requested));
        await job.Completion.WaitAsync(Ct);
        var expected = Standard | (requested ?? JobIsolation.None);

        Assert.Equal(expected, job.Spec.Isolation);
        var lines = t.Output(job).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("pid=2", lines[0]);
        Assert.StartsWith("ipc:[", lines[1], StringComparison.Ordinal);
        Assert.NotEqual(HostNamespace("ipc"), lines[1]);
        Assert.StartsWith("uts:[", lines[2], StringComparison.Ordinal);
        Assert.NotEqual(HostNamespace("uts"), lines[2]);

        // What the record says is what the job got: a restarted runner reports the same.
        await t.RestartAsync();
        Assert.Equal(expected, Assert.Single(t.Runner.Jobs, j => j.Id == job.Id).Spec.Isolation);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_RequiredIsolationNone_SpecCanTurnTheDefaultOff()
    {
        await using var t = TestRunner.Create(o => o with { DefaultIsolation = Standard });

        var job = t.Runner.Start(Shell("readlink /proc/self/ns/pid", JobIsolation.None));
        await job.Completion.WaitAsync(Ct);

        Assert.Equal(JobIsolation.None, job.Spec.Isolation);
        Assert.Equal(HostNamespace("pid") + "\n", t.Output(job));
    }

    [Theory(Timeout = 30_000)]
    [InlineData("DefaultIsolation")]
    [InlineData("RequiredIsolation")]
    public void Create_IsolationWithUnknownFlags_RefusedNamingTheOption(string option)
    {
        var ex = Assert.Throws<ArgumentException>(() => TestRunner.Create(o => option == "DefaultIsolation"
            ? o with { DefaultIsolation = (JobIsolation)64 }
            : o with { RequiredIsolation = (JobIsolation)64 }));

        Assert.StartsWith($"{option} 64 has unknown flags; use a combination of Pid, Mount, Network, Ipc and Uts.", ex.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_IpcIsolated_SysVSharedMemoryOfHostAndOtherJobsInvisible()
    {
        await using var t = TestRunner.Create();
        var hostKey = Random.Shared.Next(0x10000, int.MaxValue);
        var hostSegment = ShmGet(hostKey, 4096, IPC_CREAT | 0b110_000_000);
        Assert.True(hostSegment >= 0, $"shmget failed: {Marshal.GetLastPInvokeError()}");
        try
        {
            // The first job creates a segment and stays; the second lists what it can see meanwhile.
            var first = t.Runner.Start(Shell("ipcmk -M 4096 >/dev/null && cat /proc/sysvipc/shm && echo ready && sleep 30", JobIsolation.Ipc));
            var firstListing = await t.WaitForOutputAsync(first, "ready", Ct);
            var second = await RunAsync(t, Shell("cat /proc/sysvipc/shm", JobIsolation.Ipc));
            var shared = await RunAsync(t, Shell("cat /proc/sysvipc/shm", JobIsolation.None));
            var hostListing = await File.ReadAllTextAsync("/proc/sysvipc/shm", Ct);

            var firstKeys = Keys(firstListing);
            var firstKey = Assert.Single(firstKeys);
            Assert.Empty(Keys(second));
            Assert.Contains(hostKey, Keys(shared));
            Assert.DoesNotContain(firstKey, Keys(hostListing));
            await first.StopAsync(TimeSpan.Zero, Ct);
        }
        finally
        {
            _ = ShmCtl(hostSegment, IPC_RMID, 0);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_IpcAndMountIsolated_DevShmPrivateToEachJob()
    {
        await using var t = TestRunner.Create();
        var suffix = Guid.NewGuid().ToString("N");
        var hostFile = "/dev/shm/jobworker-test-host-" + suffix;
        var jobFile = "/dev/shm/jobworker-test-job-" + suffix;
        await File.WriteAllTextAsync(hostFile, "host", Ct);
        try
        {
            const JobIsolation IpcMount = JobIsolation.Ipc | JobIsolation.Mount;
            var first = t.Runner.Start(Shell($"ls -A /dev/shm; echo job > {jobFile} && echo ready && sleep 30", IpcMount));
            var firstListing = await t.WaitForOutputAsync(first, "ready", Ct);
            var second = await RunAsync(t, Shell("ls -A /dev/shm", IpcMount));
            var shared = await RunAsync(t, Shell("ls -A /dev/shm", JobIsolation.None));

            Assert.Equal("ready\n", firstListing);
            Assert.Equal("[Exited 0 ]", second);
            Assert.False(File.Exists(jobFile));
            Assert.Contains(Path.GetFileName(hostFile), shared, StringComparison.Ordinal);
            await first.StopAsync(TimeSpan.Zero, Ct);
        }
        finally
        {
            File.Delete(hostFile);
            File.Delete(jobFile);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_UtsIsolatedRootJob_HostNameChangeStaysInTheJob()
    {
        // Only root may change a host name; a job that is not in a namespace of its own changes nothing (the guard).
        await using var t = TestRunner.Create(o => o with { User = "root", Group = "root" });
        var hostName = (await File.ReadAllTextAsync("/proc/sys/kernel/hostname", Ct)).Trim();
        var script = $"[ \"$(readlink /proc/self/ns/uts)\" = '{HostNamespace("uts")}' ] && {{ echo shared; exit 1; }}; "
            + "uname -n; echo jobworker-uts-test > /proc/sys/kernel/hostname && uname -n";

        var isolated = await RunAsync(t, Shell(script, JobIsolation.Uts));
        var shared = await RunAsync(t, Shell(script, JobIsolation.None));

        Assert.Equal($"{hostName}\njobworker-uts-test\n[Exited 0 ]", isolated);
        Assert.Equal("shared\n[Exited 1 ]", shared);
        Assert.Equal(hostName, (await File.ReadAllTextAsync("/proc/sys/kernel/hostname", Ct)).Trim());
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_MountIsolated_HostUnmountAndNewMountReachTheJob()
    {
        // The test's own shared mount (the host's / may be private): a tmpfs at base, shared, with a tmpfs at
        // base/inner. A job's copy of base is a slave of it: what the host unmounts or mounts below base reaches the
        // job. Outside /tmp, which the job's mount namespace replaces.
        var base_ = Path.Combine("/var/tmp", "jobworker-test-propagation-" + Guid.NewGuid().ToString("N")[..12]);
        var inner = Path.Combine(base_, "inner");
        var later = Path.Combine(base_, "later");
        Directory.CreateDirectory(base_);
        try
        {
            Mount("jobworker-test", base_, "tmpfs", 0, "mode=0755");
            Mount(null, base_, null, MS_SHARED, null);
            Directory.CreateDirectory(inner);
            Directory.CreateDirectory(later);
            Mount("jobworker-test", inner, "tmpfs", 0, "mode=0755");
            await File.WriteAllTextAsync(Path.Combine(inner, "marker"), "x", Ct);

            await using var t = TestRunner.Create();
            var script = $"[ -e {inner}/marker ] && echo seen; "
                + $"i=0; while [ -e {inner}/marker ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; [ -e {inner}/marker ] && echo still-mounted || echo unmounted; "
                + $"i=0; while [ ! -e {later}/marker ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; [ -e {later}/marker ] && echo mounted || echo not-mounted";
            var job = t.Runner.Start(Shell(script, JobIsolation.Pid | JobIsolation.Mount));
            await t.WaitForOutputAsync(job, "seen", Ct);

            Assert.Equal(0, Umount2(inner, 0));
            await t.WaitForOutputAsync(job, "mounted", Ct); // "unmounted" or "still-mounted"
            Mount("jobworker-test", later, "tmpfs", 0, "mode=0755");
            await File.WriteAllTextAsync(Path.Combine(later, "marker"), "x", Ct);
            var status = await job.Completion.WaitAsync(Ct);

            Assert.Equal("seen\nunmounted\nmounted\n", t.Output(job));
            Assert.Equal(JobState.Exited, status.State);
        }
        finally
        {
            foreach (var path in new[] { later, inner, base_ })
            {
                _ = Umount2(path, MNT_DETACH);
            }

            Directory.Delete(base_, recursive: true);
        }
    }

    /// <summary>The host's namespace of a kind as readlink shows it (<c>ipc:[4026531839]</c>).</summary>
    private static string HostNamespace(string kind) => File.ResolveLinkTarget($"/proc/self/ns/{kind}", false)!.Name;

    /// <summary>The key column of a /proc/sysvipc/shm listing (after its header line).</summary>
    private static List<int> Keys(string listing) => [.. listing.Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Where(fields => fields.Length > 1 && int.TryParse(fields[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out _))
        .Select(fields => int.Parse(fields[0], CultureInfo.InvariantCulture))];

    private static void Mount(string? source, string target, string? type, ulong flags, string? data)
    {
        if (MountCall(source, target, type, flags, data) != 0)
        {
            throw new IOException($"mount {target}: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "shmget", SetLastError = true)]
    private static partial int ShmGet(int key, nuint size, int flags);

    [LibraryImport("libc", EntryPoint = "shmctl", SetLastError = true)]
    private static partial int ShmCtl(int id, int command, nint buffer);

    [LibraryImport("libc", EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MountCall(string? source, string target, string? type, ulong flags, string? data);

    [LibraryImport("libc", EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Umount2(string target, int flags);
}
