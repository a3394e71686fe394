using System.Diagnostics;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Processes;
using JobWorker.Core.Tests.Infrastructure;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Tests.Processes;

public sealed class ProcessSpawnerTests
{
    [Theory(Timeout = 30_000)]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Spawn_IntoCgroup_ChildIsInGroupBeforeExec(bool forceFallback)
    {
        var group = JobCgroup.Create(Path.Combine(TestRunner.CgroupMount, "jobworker-test-spawn-" + Guid.NewGuid().ToString("N")[..8]));
        using var spawner = new ProcessSpawner();
        var output = Path.GetTempFileName();
        try
        {
            using var stdin = File.OpenHandle("/dev/null");
            using var outHandle = File.OpenHandle(output, FileMode.Open, FileAccess.Write);
            using var cgroupFd = group.OpenDirectory();

            var result = spawner.Spawn(new SpawnRequest
            {
                ExecPaths = [TestRunner.TestProcess],
                Argv = ["testprocess", "cgroup"],
                Environment = [],
                Stdin = stdin,
                Output = outHandle,
                Cgroup = cgroupFd,
                ForceFallback = forceFallback,
            });

            Assert.True(result.Succeeded, $"failed at {result.FailedStep}: {result.Errno}");
            Assert.Equal(!forceFallback, result.UsedClone3);
            using SafeFileHandle pidfd = result.Pidfd!;
            Assert.Equal(0, Interop.Spawn.PidfdWait(pidfd, 0, out var kind, out var code));
            Assert.Equal(1, kind);
            Assert.Equal(0, code);
            var relative = group.Path[TestRunner.CgroupMount.Length..];
            Assert.Equal($"cgroup={relative}\n", await File.ReadAllTextAsync(output, TestContext.Current.CancellationToken));
        }
        finally
        {
            File.Delete(output);
            Assert.True(group.TryRemove());
        }
    }

    [Theory(Timeout = 30_000)]
    [InlineData("plain")]
    [InlineData("init")]
    public async Task Spawn_CallerWithStdioClosed_ChildGetsItsPipesAndEnvironment(string mode)
    {
        // tests/JobWorker.TestProcess/spawnharness.c closes its fds 0-2 and calls jw_spawn with the output pipe's
        // write end on fd 0, /dev/null on fd 1 and (init) the init's status pipe on fd 2: the order in which the
        // child's dup2s would overwrite each other's sources.
        var harness = Path.Combine(AppContext.BaseDirectory, "jobworker-spawnharness");
        var start = new ProcessStartInfo(harness) { RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(mode);
        start.ArgumentList.Add(TestRunner.TestProcess);
        if (mode == "init")
        {
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "jobworker-init"));
        }

        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        await process.WaitForExitAsync(TestContext.Current.CancellationToken);

        Assert.Equal(0, process.ExitCode);
        var expectedStatus = mode == "init" ? "1:0" : "none";
        Assert.Equal($"output=hello|MARKER=from-env|\nstatus={expectedStatus}\nexit=1:0\n", output);
    }

    [Fact(Timeout = 30_000)]
    public async Task Init_ParentGoneBeforeDeathSignal_ExitsWithoutStartingTheTarget()
    {
        // The harness execs jobworker-init itself with an error pipe nobody reads: what the init sees when its
        // parent died between the clone and its PR_SET_PDEATHSIG (the signal would then never come).
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "jobworker-spawnharness")) { RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add("orphan-init");
        start.ArgumentList.Add(TestRunner.TestProcess);
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "jobworker-init"));

        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        await process.WaitForExitAsync(TestContext.Current.CancellationToken);

        Assert.Equal(0, process.ExitCode);
        Assert.Equal("output=\ninit=1:127\n", output);
    }

    [Fact(Timeout = 30_000)]
    public void Spawn_ExecCandidates_TriesInOrderAndRemembersEacces()
    {
        using var spawner = new ProcessSpawner();
        using var stdin = File.OpenHandle("/dev/null");
        using var devNull = File.OpenHandle("/dev/null", FileMode.Open, FileAccess.Write);

        var result = spawner.Spawn(new SpawnRequest
        {
            ExecPaths = ["/nonexistent/a", "/etc/passwd", "/nonexistent/b"],
            Argv = ["x"],
            Environment = [],
            Stdin = stdin,
            Output = devNull,
        });

        Assert.False(result.Succeeded);
        Assert.Equal(Interop.Spawn.Step.Exec, result.FailedStep);
        Assert.Equal(Interop.EACCES, result.Errno);
    }
}
