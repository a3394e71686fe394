using System.Diagnostics;
using System.Globalization;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Processes;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Cgroups;

public sealed class CgroupEventsWatcherTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 30_000)]
    public async Task WaitUntilEmpty_GroupEmpties_Completes()
    {
        using var loop = new EventLoop();
        using var watcher = new CgroupEventsWatcher(loop);
        var group = CreateGroup();
        using var sleeper = StartIn(group);
        try
        {
            var empty = watcher.WaitUntilEmptyAsync(new JobCgroup(group));
            Assert.False(empty.IsCompleted);

            sleeper.Kill();
            await empty.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        }
        finally
        {
            await RemoveGroupAsync(group, sleeper);
        }
    }

    /// <summary>
    /// A real overflow of the kernel's event queue, local to this watcher: its events are held unread (not the
    /// system-wide <c>fs.inotify.max_queued_events</c>, which the test never changes) while more events than that
    /// limit are generated on two files it also watches, so the group's "populated 0" event is dropped.
    /// </summary>
    [Fact(Timeout = 60_000)]
    public async Task WaitUntilEmpty_QueueOverflowLosesThePopulatedEvent_RecoversByRereading()
    {
        var maxQueued = int.Parse(File.ReadAllText("/proc/sys/fs/inotify/max_queued_events").Trim(), CultureInfo.InvariantCulture);
        Assert.SkipWhen(maxQueued > 1 << 20, $"fs.inotify.max_queued_events is {maxQueued}: too many events to overflow the queue in a test");

        using var loop = new EventLoop();
        using var watcher = new CgroupEventsWatcher(loop);

        // A second watcher, never held: when it sees "populated 0", the kernel has offered that event to every
        // inotify queue watching the file, the held (full) one included.
        using var witnessLoop = new EventLoop();
        using var witness = new CgroupEventsWatcher(witnessLoop);
        var group = CreateGroup();
        var noise = Directory.CreateTempSubdirectory("jobworker-test-inotify-");
        var noiseFiles = new List<FileStream>();
        Process? sleeper = null;
        try
        {
            // The kernel notifies "populated 1" from a work item, possibly late: if that event reached the watcher's
            // queue, the group's watch would be looked at anyway. So wait for it to be delivered before watching.
            sleeper = WhenNotified(Path.Combine(group, "cgroup.events"), () => StartIn(group));
            var empty = watcher.WaitUntilEmptyAsync(new JobCgroup(group));
            var witnessed = witness.WaitUntilEmptyAsync(new JobCgroup(group));
            Assert.False(empty.IsCompleted);
            for (var i = 0; i < 2; i++)
            {
                // Stand-ins for other jobs' groups: a cgroup.events file that says "populated 1" as long as it is watched.
                var fake = Directory.CreateDirectory(Path.Combine(noise.FullName, i.ToString(CultureInfo.InvariantCulture))).FullName;
                File.WriteAllText(Path.Combine(fake, "cgroup.events"), "populated 1\n");
                _ = watcher.WaitUntilEmptyAsync(new JobCgroup(fake));
                noiseFiles.Add(new FileStream(Path.Combine(fake, "cgroup.events"), FileMode.Append, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0));
            }

            OverflowThenEmpty(watcher, noiseFiles, maxQueued + 100, sleeper, witnessed);

            await empty.WaitAsync(TimeSpan.FromSeconds(10), Ct);
            Assert.Equal(1, watcher.Overflows);
        }
        finally
        {
            foreach (var file in noiseFiles)
            {
                await file.DisposeAsync();
            }

            noise.Delete(recursive: true);
            await RemoveGroupAsync(group, sleeper);
        }
    }

    /// <summary>Holds the watcher's events while the queue overflows, then while the group's process dies.</summary>
    private static void OverflowThenEmpty(CgroupEventsWatcher watcher, List<FileStream> noiseFiles, int events, Process sleeper, Task witnessed)
    {
        using (watcher.HoldEvents())
        {
            // Alternating files: the kernel merges an event only into an identical last one, so each write queues one.
            for (var n = 0; n < events; n++)
            {
                noiseFiles[n % 2].WriteByte((byte)'\n');
            }

            sleeper.Kill();
            Assert.True(witnessed.Wait(TimeSpan.FromSeconds(10)), "the group did not empty");
        }
    }

    /// <summary>Runs <paramref name="action"/> and returns once a modification of <paramref name="file"/> was notified.</summary>
    private static unsafe T WhenNotified<T>(string file, Func<T> action)
    {
        using var probe = new Microsoft.Win32.SafeHandles.SafeFileHandle(Interop.Inotify.Init(Interop.Inotify.IN_CLOEXEC | Interop.Inotify.IN_NONBLOCK), ownsHandle: true);
        Assert.False(probe.IsInvalid);
        Assert.True(Interop.Inotify.AddWatch(probe, file, Interop.Inotify.IN_MODIFY) >= 0);
        var result = action();
        var poll = new Interop.Io.PollFd { Fd = (int)probe.DangerousGetHandle(), Events = Interop.Io.POLLIN };
        Assert.True(Interop.Io.Poll(&poll, 1, 10_000) == 1, $"no modification of {file} was notified");
        return result;
    }

    private static string CreateGroup()
    {
        var group = Path.Combine(TestRunner.CgroupMount, "jobworker-test-watch-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(group);
        return group;
    }

    /// <summary>A process of the test's own, moved into <paramref name="group"/>.</summary>
    private static Process StartIn(string group)
    {
        var sleeper = Process.Start(new ProcessStartInfo("sleep", "60") { UseShellExecute = false })!;
        File.WriteAllText(Path.Combine(group, "cgroup.procs"), sleeper.Id.ToString(CultureInfo.InvariantCulture));
        return sleeper;
    }

    private static async Task RemoveGroupAsync(string group, Process? sleeper)
    {
        if (sleeper is not null)
        {
            if (!sleeper.HasExited)
            {
                sleeper.Kill();
            }

            await sleeper.WaitForExitAsync(CancellationToken.None);
            sleeper.Dispose();
        }

        for (var attempt = 0; ; attempt++)
        {
            try
            {
                Directory.Delete(group);
                return;
            }
            catch (IOException) when (attempt < 100)
            {
                await Task.Delay(20, CancellationToken.None);
            }
        }
    }
}
