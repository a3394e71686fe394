using System.Diagnostics.CodeAnalysis;
using JobWorker.Core.Jobs;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Processes;

/// <summary>
/// Supervisors (<c>jobworker-shim pool</c>) started ahead of their jobs, so that a start does not wait for the
/// supervisor's exec: taking one writes the launch to its stdin (the job's shim cgroup, the same command line a
/// directly started supervisor gets, then the job's environment). The pooled shim then forks a copy of itself
/// into that cgroup as the server's child, which supervises the job, and exits once the copy has reported (see
/// <see cref="TryHandOver"/>). Nothing is migrated between cgroups: a write to <c>cgroup.procs</c> waits for an RCU
/// grace period (about 10 ms) unless another migration happened just before. An idle supervisor holds no job
/// state; it exits when its stdin closes without a launch, so a pool needs no clean-up beyond closing it, and a
/// server that dies leaves nothing behind. The runner refills it after each start (<see cref="Refill"/>). See docs/design-durability.md.
/// </summary>
internal sealed class SupervisorPool : IDisposable
{
    private readonly ProcessSpawner _spawner;
    private readonly string _shimPath;
    private readonly int _size;
    private readonly Queue<IdleSupervisor> _idle = new();
    private readonly object _lock = new();
    private bool _refilling;
    private bool _disposed;

    public SupervisorPool(ProcessSpawner spawner, string shimPath, int size)
    {
        _spawner = spawner;
        _shimPath = shimPath;
        _size = size;
    }

    /// <summary>
    /// Starts the job's supervisor from the pool: sends an idle one <paramref name="shimCgroup"/>,
    /// <paramref name="argv"/> and <paramref name="environment"/>. Null when the pool is empty or the idle supervisor
    /// is gone (the caller starts one directly); otherwise the pooled supervisor's pid, pidfd and report pipe; once
    /// the report is read, <see cref="TryHandOver"/> gives the pidfd of the supervisor that runs the job.
    /// </summary>
    public Launched? TryLaunch(string shimCgroup, IReadOnlyList<string> argv, IReadOnlyList<string> environment)
    {
        IdleSupervisor? idle;
        lock (_lock)
        {
            _idle.TryDequeue(out idle);
        }

        return idle?.TryLaunch(shimCgroup, argv, environment);
    }

    /// <summary>
    /// Reads the report of a supervisor <paramref name="launched"/> from the pool. False when it died before anything
    /// was reported (killed while idle, before it read the launch: it is reaped, and the caller starts a supervisor
    /// directly). Otherwise the report, and the pidfd of the supervisor that runs the job: the pooled one's copy (our
    /// child as well), or the pooled one itself when it failed before the copy existed. The pooled one exits once its
    /// copy has reported; it is reaped here, or off the start path when it has not exited yet.
    /// </summary>
    /// <exception cref="JobStartException">The copy's pidfd cannot be opened (out of file descriptors).</exception>
    public static bool TryHandOver(Launched launched, out Interop.Spawn.ShimReport report, [NotNullWhen(true)] out SafeFileHandle? pidfd)
    {
        ArgumentNullException.ThrowIfNull(launched);
        using (launched.Report)
        {
            report = ShimLaunch.ReadReport(launched.Report);
        }

        if (report.ShimPid <= 0)
        {
            _ = Interop.Spawn.PidfdWait(launched.Pidfd, nohang: 0, out _, out _);
            launched.Pidfd.Dispose();
            pidfd = null;
            return false;
        }

        if (report.ShimPid == launched.Pid)
        {
            pidfd = launched.Pidfd;
            return true;
        }

        ReapWhenGone(launched.Pidfd);

        // Our child and not yet waited for, so the pid cannot have been reused.
        var fd = Interop.Spawn.PidfdOpen(report.ShimPid);
        if (fd < 0)
        {
            throw new JobStartException(JobStartFailure.SpawnFailed, $"Cannot open the job's supervisor (pid {report.ShimPid}): {Interop.Describe(-fd)}.", -fd);
        }

        pidfd = new SafeFileHandle(fd, ownsHandle: true);
        return true;
    }

    private static void ReapWhenGone(SafeFileHandle pidfd)
    {
        if (Interop.Spawn.PidfdWait(pidfd, nohang: 1, out var kind, out _) == 0 && kind == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(
                static fd =>
                {
                    _ = Interop.Spawn.PidfdWait(fd, nohang: 0, out _, out _);
                    fd.Dispose();
                },
                pidfd,
                preferLocal: false);
            return;
        }

        pidfd.Dispose();
    }

    /// <summary>How many supervisors wait for a job now.</summary>
    public int IdleCount
    {
        get
        {
            lock (_lock)
            {
                return _idle.Count;
            }
        }
    }

    /// <summary>The pids of the supervisors waiting now (for tests).</summary>
    public int[] IdlePids()
    {
        lock (_lock)
        {
            return [.. _idle.Select(i => i.Pid)];
        }
    }

    /// <summary>Ends the idle supervisors, after a refill under way has finished (it uses the runner's spawner).</summary>
    public void Dispose()
    {
        IdleSupervisor[] idle;
        lock (_lock)
        {
            _disposed = true;
            while (_refilling)
            {
                Monitor.Wait(_lock);
            }

            idle = [.. _idle];
            _idle.Clear();
        }

        foreach (var supervisor in idle)
        {
            supervisor.End(kill: false);
        }
    }

    /// <summary>
    /// Starts the supervisors the pool lacks, and returns once it has them (or cannot start one now). The runner calls
    /// it from its own thread after each start (see <c>JobRunner.PrepareAhead</c>), never on the start path.
    /// </summary>
    public void Refill()
    {
        lock (_lock)
        {
            if (_refilling || _disposed || _idle.Count >= _size)
            {
                return;
            }

            _refilling = true;
        }

        IdleSupervisor? idle = null;
        try
        {
            while (true)
            {
                lock (_lock)
                {
                    if (_disposed || _idle.Count >= _size)
                    {
                        return;
                    }
                }

                // A failed spawn leaves the pool short: the direct start reports why, with the job's context.
                idle = IdleSupervisor.Start(_spawner, _shimPath, cgroup: null);
                lock (_lock)
                {
                    if (idle is null || _disposed)
                    {
                        return;
                    }

                    _idle.Enqueue(idle);
                    idle = null;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or ObjectDisposedException)
        {
            // Out of fds or processes for now: the next start refills again, or starts directly.
        }
        finally
        {
            idle?.End(kill: false);
            lock (_lock)
            {
                _refilling = false;
                Monitor.PulseAll(_lock);
            }
        }
    }

    /// <summary>A supervisor started from the pool: its pid, pidfd (the caller owns it) and report pipe.</summary>
    public sealed record Launched(int Pid, SafeFileHandle Pidfd, SafeFileHandle Report);
}
