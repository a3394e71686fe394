using JobWorker.Core.Jobs;
using JobWorker.Core.State;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.State;

public sealed class DirectoryLockTests
{
    private static string OwnExecutable => new FileInfo("/proc/self/exe").LinkTarget!;

    [Fact(Timeout = 30_000)]
    public async Task DirectoryLock_CgroupDirectory_ExclusiveInAndAcrossProcesses()
    {
        var group = Path.Combine(TestRunner.CgroupMount, "jobworker-test-lock-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(group);
        try
        {
            using (var held = DirectoryLock.Acquire(group, "cgroup root", "CgroupRoot"))
            {
                Assert.Equal(group, held.Path);

                // Another open file description in this process conflicts, as another server's would.
                var ex = Assert.Throws<JobWorkerException>(() => DirectoryLock.Acquire(group, "cgroup root", "CgroupRoot"));
                Assert.Equal(
                    $"Cgroup root {group} is in use by another JobWorker server (pid {Environment.ProcessId}, {OwnExecutable}). " +
                    "Stop it, or give this server its own cgroup root (CgroupRoot).",
                    ex.Message);
                Assert.Equal(1, await LockingProcess.RunAsync("flock", "-n", group, "true"));
            }

            Assert.Equal(0, await LockingProcess.RunAsync("flock", "-n", group, "true"));
            var holder = await LockingProcess.StartHolderAsync(group);
            try
            {
                var ex = Assert.Throws<JobWorkerException>(() => DirectoryLock.Acquire(group, "cgroup root"));
                Assert.Contains($"(pid {holder.Id}, /usr/bin/flock)", ex.Message, StringComparison.Ordinal);
            }
            finally
            {
                await LockingProcess.StopAsync(holder);
            }

            using var again = DirectoryLock.Acquire(group, "cgroup root");
        }
        finally
        {
            Directory.Delete(group);
        }
    }

    [Fact]
    public void DirectoryLock_MissingDirectory_IOExceptionNamingIt()
    {
        var missing = Path.Combine(Path.GetTempPath(), "jobworker-test-missing-" + Guid.NewGuid().ToString("N"));

        var ex = Assert.Throws<IOException>(() => DirectoryLock.Acquire(missing, "cgroup root"));

        Assert.Contains(missing, ex.Message, StringComparison.Ordinal);
        Assert.Contains("ENOENT", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FindHolderPid_ProcLocksLines_MatchesDeviceAndInodeOfGrantedLockOnly()
    {
        string[] lines =
        [
            "1: POSIX  ADVISORY  WRITE 100 08:01:15263 0 EOF",           // other device
            "2: FLOCK  ADVISORY  WRITE 200 00:26:15264 0 EOF",           // other inode
            "3: FLOCK  ADVISORY  WRITE 300 00:26:15263 0 EOF",           // ours
            "3: -> FLOCK  ADVISORY  WRITE 400 00:26:15263 0 EOF",        // a waiter
            "4: OFDLCK ADVISORY  READ  -1 103:1a:15263 0 EOF",           // no pid
        ];

        Assert.Equal(300, LockHolder.FindHolderPid(lines, 0, 0x26, 15263));
        Assert.Null(LockHolder.FindHolderPid(lines[3..], 0, 0x26, 15263));
        Assert.Null(LockHolder.FindHolderPid(lines, 0x103, 0x1a, 15263));
        Assert.Equal(100, LockHolder.FindHolderPid(lines, 8, 1, 15263));
    }
}
