using System.Diagnostics;
using System.Globalization;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Cgroups;

public sealed class CgroupTreeTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void FindMountPoint_HostMountInfo_FindsCgroup2()
    {
        var mount = CgroupMount.FindMountPoint();

        Assert.NotNull(mount);
        Assert.True(File.Exists(Path.Combine(mount, "cgroup.procs")));
    }

    [Fact]
    public void FindMountPoint_EscapedPath_Unescaped()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(file, [
                "22 1 0:21 / /proc rw,nosuid - proc proc rw",
                @"36 35 0:30 / /sys/fs/cgroup\040v2 rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate",
            ]);

            Assert.Equal("/sys/fs/cgroup v2", CgroupMount.FindMountPoint(file));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Create_GroupsWithoutRecord_LeftUntouched()
    {
        // Arrange: the cgroup root holds groups this runner never created (another tool's, or another server's),
        // one with a live process in it. The test created them and removes them itself.
        var root = Path.Combine(TestRunner.CgroupMount, "jobworker-test-foreign-" + Guid.NewGuid().ToString("N")[..8]);
        var foreign = Path.Combine(root, "0123456789abcdef0123456789abcdef");
        var other = Path.Combine(root, "not-a-job");
        Directory.CreateDirectory(foreign);
        Directory.CreateDirectory(other);
        using var process = Process.Start(new ProcessStartInfo("/bin/sleep", "60"))!;
        var state = Path.Combine(Path.GetTempPath(), "jobworker-test-state-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            File.WriteAllText(Path.Combine(foreign, "cgroup.procs"), process.Id.ToString(CultureInfo.InvariantCulture));

            // Act: a runner starts on that root, runs a job and stops everything it has.
            var runner = JobRunner.Create(new JobRunnerOptions { CgroupRoot = root, StateDirectory = state, Identity = TestRunner.SharedAccount });
            var job = runner.Start(new JobSpec("/bin/true"));
            await job.Completion.WaitAsync(Ct);
            await runner.StopAllAsync(cancellationToken: Ct);
            await runner.DisposeAsync();

            // Assert: nothing it has no record of was touched.
            Assert.True(Directory.Exists(foreign));
            Assert.True(Directory.Exists(other));
            Assert.False(process.HasExited);
            Assert.Contains(process.Id.ToString(CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(foreign, "cgroup.procs")), StringComparison.Ordinal);
            Assert.False(Directory.Exists(Path.Combine(root, job.Id.ToString("N"))));
        }
        finally
        {
            process.Kill();
            await process.WaitForExitAsync(Ct);
            TestRunner.KillAndRemove(root);
            if (Directory.Exists(state))
            {
                Directory.Delete(state, recursive: true);
            }
        }
    }

    [Theory]
    [InlineData(0, "5")]
    [InlineData(1, "6")]
    public void LimitPlan_ExtraProcesses_AddedToPidsMax(int extra, string expected)
    {
        var plan = CgroupLimitPlan.Create(new ResourceLimits { MaxProcesses = 5 }, extraProcesses: extra);

        Assert.Equal(("pids", "pids.max", expected, false), Assert.Single(plan.Writes));
    }

    [Fact]
    public void LimitPlan_AllLimits_WritesExpectedFiles()
    {
        var device = Jobs.JobStartFailureTests.FirstBlockDevice();
        var plan = CgroupLimitPlan.Create(new ResourceLimits
        {
            CpuCores = 1.5,
            MemoryBytes = 64 << 20,
            MaxProcesses = 5,
            Io = [new IoLimit(device) { ReadBytesPerSecond = 1000, WriteIops = 7 }],
        });

        Assert.Equal(
            [
                ("cpu", "cpu.max", "150000 100000", false),
                ("memory", "memory.max", "67108864", false),
                ("memory", "memory.swap.max", "0", true),
                ("memory", "memory.oom.group", "1", false),
                ("pids", "pids.max", "5", false),
                ("io", "io.max", $"{device} rbps=1000 wiops=7", false),
            ],
            plan.Writes);
    }

    /// <summary>
    /// Needs a partitioned disk, which this host and CI lack: the trait sends it to the guest, which has one
    /// (<c>JOBWORKER_TEST_PARTITION</c>, set by tests/vm/run-controller-tests.sh). A host with a partition runs it too.
    /// </summary>
    [Fact]
    [Trait("Category", "CgroupControllers")]
    public void BlockDevices_Partition_ResolvesToDisk()
    {
        var partition = Environment.GetEnvironmentVariable("JOBWORKER_TEST_PARTITION") is { Length: > 0 } given
            ? "/sys/class/block/" + Path.GetFileName(given)
            : Directory.Exists("/sys/class/block")
                ? Directory.EnumerateDirectories("/sys/class/block").FirstOrDefault(d => File.Exists(Path.Combine(d, "partition")))
                : null;
        Assert.SkipWhen(partition is null, "this host has no disk partition; tests/vm/run-controller-tests.sh provides one (JOBWORKER_TEST_PARTITION)");
        Assert.True(File.Exists(Path.Combine(partition, "partition")), $"{partition} is not a partition");
        var name = Path.GetFileName(partition);
        var disk = Path.GetFileName(Path.GetDirectoryName(new DirectoryInfo(partition).ResolveLinkTarget(true)!.FullName))!;
        var diskDev = File.ReadAllText($"/sys/class/block/{disk}/dev").Trim();
        var partDev = File.ReadAllText(Path.Combine(partition, "dev")).Trim();
        Assert.NotEqual(diskDev, partDev);

        Assert.Equal(diskDev, BlockDevices.Resolve(partDev, "Device"));
        Assert.Equal(diskDev, BlockDevices.Resolve(diskDev, "Device"));
        if (File.Exists("/dev/" + name))
        {
            Assert.Equal(diskDev, BlockDevices.Resolve("/dev/" + name, "Device"));
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"partition {name} ({partDev}) resolves to disk {disk} ({diskDev})");
    }

    [Fact]
    public void BlockDevices_Disk_ResolvesToItself()
    {
        var device = Jobs.JobStartFailureTests.FirstBlockDevice();

        Assert.Equal(device, BlockDevices.Resolve(device, "Device"));
    }

    [Fact]
    public void DelegatedCgroup_ProcessInRootCgroup_Refused()
    {
        Assert.SkipUnless(JobWorker.Core.Cgroups.CgroupMount.FindOwnCgroup() == "/", "this process is not in the root cgroup");

        var ex = Assert.Throws<JobWorkerException>(() => JobRunner.Create(new JobRunnerOptions { UseDelegatedCgroup = true, StateDirectory = "/tmp/jobworker-never-created" }));

        Assert.Contains("not a delegated subtree", ex.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists("/tmp/jobworker-never-created"));
    }
}
