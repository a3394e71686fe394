using System.Globalization;
using JobWorker.Core.Jobs;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Cgroups;

/// <summary>One job's cgroup v2 group: limits, signals, usage and removal.</summary>
internal sealed class JobCgroup
{
    private const int RemoveAttempts = 50;

    public JobCgroup(string path)
    {
        Path = path;
    }

    public string Path { get; }

    public string EventsFile => System.IO.Path.Combine(Path, "cgroup.events");

    /// <summary>Creates the group directory.</summary>
    public static JobCgroup Create(string path)
    {
        if (Interop.Sys.MakeDirectory(path, 0b111_101_101) < 0)
        {
            var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            throw Interop.CreateIOException(errno, "creating cgroup", path);
        }

        return new JobCgroup(path);
    }

    /// <summary>A directory fd for <c>CLONE_INTO_CGROUP</c>.</summary>
    public SafeFileHandle OpenDirectory()
    {
        var fd = Interop.CheckNegatedErrno(Interop.Spawn.OpenDirectory(Path), "opening cgroup", Path);
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    public void Apply(CgroupLimitPlan plan)
    {
        foreach (var (_, file, value, optional) in plan.Writes)
        {
            var path = System.IO.Path.Combine(Path, file);
            var errno = CgroupFiles.TryWrite(path, value);
            if (errno == Interop.ENOENT && optional)
            {
                continue;
            }

            if (errno != 0)
            {
                throw Interop.CreateIOException(errno, $"writing '{value}' to", path);
            }
        }
    }

    /// <summary>SIGKILL to every process in the group, atomically (<c>cgroup.kill</c>, Linux 5.14).</summary>
    public void Kill()
    {
        var errno = CgroupFiles.TryWrite(System.IO.Path.Combine(Path, "cgroup.kill"), "1");
        if (errno == Interop.ENOENT && Directory.Exists(Path))
        {
            // Kernels before 5.14: signal each process; a fork racing with this is caught by the caller's
            // wait for "populated 0" followed by another Kill.
            Signal(Interop.Sys.SIGKILL);
        }
    }

    /// <summary>
    /// Sends <paramref name="signal"/> to every process currently in the group (except <paramref name="exceptPid"/>),
    /// never by bare pid: each is opened as a pidfd first, then the group is read again, and only a pidfd whose pid
    /// is still in the group is signalled. A pid that was reused by a process elsewhere fails the second read; one
    /// that exited in between makes <c>pidfd_send_signal</c> fail with ESRCH.
    /// </summary>
    public int Signal(int signal, int exceptPid = 0)
    {
        var opened = new List<(int Pid, SafeFileHandle Pidfd)>();
        try
        {
            foreach (var pid in ReadProcesses())
            {
                var fd = pid == exceptPid ? -1 : Interop.Spawn.PidfdOpen(pid);
                if (fd >= 0)
                {
                    opened.Add((pid, new SafeFileHandle(fd, ownsHandle: true)));
                }
            }

            var stillHere = ReadProcesses().ToHashSet();
            var sent = 0;
            foreach (var (pid, pidfd) in opened)
            {
                if (stillHere.Contains(pid) && Interop.Spawn.PidfdSendSignal(pidfd, signal) == 0)
                {
                    sent++;
                }
            }

            return sent;
        }
        finally
        {
            foreach (var (_, pidfd) in opened)
            {
                pidfd.Dispose();
            }
        }
    }

    public List<int> ReadProcesses()
    {
        var pids = new List<int>();
        var content = CgroupFiles.TryRead(System.IO.Path.Combine(Path, "cgroup.procs"));
        if (content is null)
        {
            return pids;
        }

        foreach (var line in content.AsSpan().EnumerateLines())
        {
            if (int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                pids.Add(pid);
            }
        }

        return pids;
    }

    /// <summary>Whether any process is in the group (<c>cgroup.events populated</c>); false once it is gone.</summary>
    public bool IsPopulated() => CgroupFiles.KeyedValue(CgroupFiles.TryRead(EventsFile), "populated") is 1;

    /// <summary>Usage figures; each is null when the host does not offer it.</summary>
    public JobUsage ReadUsage()
    {
        var cpu = CgroupFiles.TryRead(System.IO.Path.Combine(Path, "cpu.stat"));
        var memoryEvents = CgroupFiles.TryRead(System.IO.Path.Combine(Path, "memory.events"));
        var io = CgroupFiles.TryRead(System.IO.Path.Combine(Path, "io.stat"));
        long? read = null;
        long? written = null;
        if (io is not null)
        {
            read = 0;
            written = 0;
            // "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device.
            foreach (var line in io.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                foreach (var field in line.Split(' '))
                {
                    if (field.StartsWith("rbytes=", StringComparison.Ordinal) && long.TryParse(field.AsSpan(7), out var r))
                    {
                        read += r;
                    }
                    else if (field.StartsWith("wbytes=", StringComparison.Ordinal) && long.TryParse(field.AsSpan(7), out var w))
                    {
                        written += w;
                    }
                }
            }
        }

        return new JobUsage
        {
            CpuUsageMicroseconds = CgroupFiles.KeyedValue(cpu, "usage_usec"),
            CpuThrottledPeriods = CgroupFiles.KeyedValue(cpu, "nr_throttled"),
            CpuThrottledMicroseconds = CgroupFiles.KeyedValue(cpu, "throttled_usec"),
            MemoryCurrentBytes = CgroupFiles.SingleValue(System.IO.Path.Combine(Path, "memory.current")),
            MemoryPeakBytes = CgroupFiles.SingleValue(System.IO.Path.Combine(Path, "memory.peak")),
            OomKills = CgroupFiles.KeyedValue(memoryEvents, "oom_kill"),
            IoReadBytes = read,
            IoWriteBytes = written,
            PidsCurrent = CgroupFiles.SingleValue(System.IO.Path.Combine(Path, "pids.current")),
        };
    }

    /// <summary>
    /// Removes the group. rmdir fails with EBUSY for a moment after the last process left (the kernel still
    /// releases it), so retry briefly; true when the group is gone.
    /// </summary>
    public async Task<bool> TryRemoveAsync()
    {
        for (var attempt = 0; attempt < RemoveAttempts; attempt++)
        {
            if (TryRemoveOnce(out var errno))
            {
                return true;
            }

            if (errno != Interop.EBUSY)
            {
                return false;
            }

            Kill();
            await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2 << attempt, 100))).ConfigureAwait(false);
        }

        return false;
    }

    /// <summary>Synchronous variant with the same bounded retry, for start-up and failed starts.</summary>
    public bool TryRemove()
    {
        for (var attempt = 0; attempt < RemoveAttempts; attempt++)
        {
            if (TryRemoveOnce(out var errno))
            {
                return true;
            }

            if (errno != Interop.EBUSY)
            {
                return false;
            }

            Kill();
            Thread.Sleep(Math.Min(2 << attempt, 100));
        }

        return false;
    }

    private bool TryRemoveOnce(out int errno)
    {
        errno = 0;
        if (Interop.Sys.RemoveDirectory(Path) == 0)
        {
            return true;
        }

        errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        return errno == Interop.ENOENT;
    }
}
