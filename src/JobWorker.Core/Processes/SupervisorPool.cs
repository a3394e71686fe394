using System.Text;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Processes;

/// <summary>
/// Supervisors (<c>jobworker-shim pool</c>) started ahead of their jobs, so that a start does not wait for the
/// supervisor's exec: taking one moves it into the job's shim cgroup and writes the launch to its stdin (the same
/// command line a directly started supervisor gets, then the job's environment). An idle supervisor holds no job
/// state; it exits when its stdin closes without a launch, so a pool needs no clean-up beyond closing it, and a
/// server that dies leaves nothing behind. Refills run off the start path. See docs/design-durability.md.
/// </summary>
internal sealed class SupervisorPool : IDisposable
{
    private readonly ProcessSpawner _spawner;
    private readonly string _shimPath;
    private readonly int _size;
    private readonly Queue<Idle> _idle = new();
    private readonly object _lock = new();
    private bool _refilling;
    private bool _disposed;

    public SupervisorPool(ProcessSpawner spawner, string shimPath, int size)
    {
        _spawner = spawner;
        _shimPath = shimPath;
        _size = size;
        ScheduleRefill();
    }

    /// <summary>
    /// Starts the job's supervisor from the pool: moves an idle one into <paramref name="shimCgroup"/> and sends it
    /// <paramref name="argv"/> and <paramref name="environment"/>. Null when the pool is empty or the idle supervisor
    /// is gone (the caller starts one directly); otherwise the supervisor's pid, pidfd and report pipe.
    /// </summary>
    public Launched? TryLaunch(string shimCgroup, IReadOnlyList<string> argv, IReadOnlyList<string> environment)
    {
        Idle? idle;
        lock (_lock)
        {
            _idle.TryDequeue(out idle);
        }

        ScheduleRefill();
        if (idle is null)
        {
            return null;
        }

        try
        {
            File.WriteAllText(Path.Combine(shimCgroup, "cgroup.procs"), idle.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
            using (var launch = new FileStream(idle.Launch, FileAccess.Write, bufferSize: 0))
            {
                launch.Write(Message(argv, environment));
            }

            return new Launched(idle.Pid, idle.Pidfd, idle.Report);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Killed while idle (ESRCH on the move, EPIPE on the write), or a group it may not enter: end and reap
            // it (it is our child, and must not stay a zombie), and start one directly.
            idle.End(kill: true);
            return null;
        }
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
        Idle[] idle;
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

    private static byte[] Message(IReadOnlyList<string> argv, IReadOnlyList<string> environment)
    {
        var size = 0;
        foreach (var s in argv.Concat(environment))
        {
            size += Encoding.UTF8.GetByteCount(s) + 1;
        }

        var message = new byte[size];
        var at = 0;
        foreach (var s in argv.Concat(environment))
        {
            at += Encoding.UTF8.GetBytes(s, message.AsSpan(at));
            message[at++] = 0;
        }

        return message;
    }

    private void ScheduleRefill()
    {
        lock (_lock)
        {
            if (_refilling || _disposed || _idle.Count >= _size)
            {
                return;
            }

            _refilling = true;
        }

        ThreadPool.UnsafeQueueUserWorkItem(_ => Refill(), null);
    }

    private void Refill()
    {
        Idle? idle = null;
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
                idle = Start();
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

    private Idle? Start()
    {
        var (launchRead, launchWrite) = Interop.Io.CreatePipe();
        var (reportRead, reportWrite) = Interop.Io.CreatePipe();
        using (launchRead)
        using (reportWrite)
        {
            // Root, in a session of its own, no death signal, an empty environment: as a directly started one. It
            // stays in the server's cgroup until a launch moves it.
            var result = _spawner.Spawn(new SpawnRequest
            {
                ExecPaths = [_shimPath],
                Argv = [ShimLaunch.ShimName, "pool"],
                Environment = [],
                Stdin = launchRead,
                Output = reportWrite,
                ParentDeathSignal = 0,
            });
            if (result.Succeeded)
            {
                return new Idle(result.Pid, result.Pidfd!, launchWrite, reportRead);
            }
        }

        launchWrite.Dispose();
        reportRead.Dispose();
        return null;
    }

    /// <summary>A supervisor started from the pool: its pid, pidfd (the caller owns it) and report pipe.</summary>
    public sealed record Launched(int Pid, SafeFileHandle Pidfd, SafeFileHandle Report);

    private sealed record Idle(int Pid, SafeFileHandle Pidfd, SafeFileHandle Launch, SafeFileHandle Report)
    {
        /// <summary>Ends an idle supervisor: closing its stdin makes it exit; then it is reaped (it is our child).</summary>
        public void End(bool kill)
        {
            Launch.Dispose();
            if (kill)
            {
                _ = Interop.Spawn.PidfdSendSignal(Pidfd, Interop.Sys.SIGKILL);
            }

            _ = Interop.Spawn.PidfdWait(Pidfd, nohang: 0, out _, out _);
            Pidfd.Dispose();
            Report.Dispose();
        }
    }
}
