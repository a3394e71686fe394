using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using JobWorker.Core.Processes;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Cgroups;

/// <summary>
/// Waits for cgroups to become empty without polling: one inotify fd (on the runner's event loop) watches each
/// waited-on group's <c>cgroup.events</c>, which the kernel modifies when <c>populated</c> changes
/// (Documentation/admin-guide/cgroup-v2.rst, "cgroup.events").
/// </summary>
internal sealed class CgroupEventsWatcher : IDisposable
{
    private readonly EventLoop _loop;
    private readonly SafeFileHandle _inotify;
    private readonly ulong _token;
    private readonly ConcurrentDictionary<int, Waiter> _waiters = new();
    private readonly Lock _lock = new();
    private bool _disposed;
    private int _overflows;

    public CgroupEventsWatcher(EventLoop loop)
    {
        _loop = loop;
        var fd = Interop.CheckIo(Interop.Inotify.Init(Interop.Inotify.IN_CLOEXEC | Interop.Inotify.IN_NONBLOCK), "inotify_init1");
        _inotify = new SafeFileHandle(fd, ownsHandle: true);
        _token = loop.Add(_inotify, OnReadable);
    }

    /// <summary>Completes once <paramref name="cgroup"/> has no process left (or no longer exists).</summary>
    public Task WaitUntilEmptyAsync(JobCgroup cgroup)
    {
        var wd = Interop.Inotify.AddWatch(_inotify, cgroup.EventsFile, Interop.Inotify.IN_MODIFY);
        if (wd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == Interop.ENOENT)
            {
                return Task.CompletedTask; // the group is gone, so it is empty
            }

            throw Interop.CreateIOException(errno, "inotify_add_watch", cgroup.EventsFile);
        }

        var waiter = _waiters.GetOrAdd(wd, _ => new Waiter(cgroup));

        // Watch first, then look: a change between the two is still seen.
        Check(wd, waiter);
        return waiter.Completion.Task;
    }

    /// <summary>Times the kernel's event queue overflowed (<c>IN_Q_OVERFLOW</c>): diagnostics and tests.</summary>
    internal int Overflows => Volatile.Read(ref _overflows);

    /// <summary>
    /// Keeps events unread until the scope is disposed, so they queue up in the kernel: lets a test fill the
    /// queue past <c>fs.inotify.max_queued_events</c> without touching that system-wide setting.
    /// </summary>
    internal Lock.Scope HoldEvents() => _lock.EnterScope();

    private void Check(int wd, Waiter waiter)
    {
        if (!waiter.Cgroup.IsPopulated() && _waiters.TryRemove(new KeyValuePair<int, Waiter>(wd, waiter)))
        {
            _ = Interop.Inotify.RemoveWatch(_inotify, wd);
            waiter.Completion.TrySetResult();
        }
    }

    private void OnReadable(ulong token)
    {
        // A callback may already be queued when Dispose runs: the lock and flag keep it off a closed fd.
        lock (_lock)
        {
            if (!_disposed)
            {
                DrainEvents(token);
            }
        }
    }

    private unsafe void DrainEvents(ulong token)
    {
        const int BufferSize = 4096;
        var buffer = stackalloc byte[BufferSize];
        var changed = new HashSet<int>();
        var overflowed = false;
        while (true)
        {
            var n = Interop.Sys.Read(_inotify, buffer, BufferSize);
            if (n <= 0)
            {
                break; // EAGAIN: all events consumed
            }

            // struct inotify_event { int wd; uint32 mask; uint32 cookie; uint32 len; char name[len]; }
            for (nint offset = 0; offset + 16 <= n;)
            {
                var wd = *(int*)(buffer + offset);
                var mask = *(uint*)(buffer + offset + 4);
                var len = *(uint*)(buffer + offset + 12);
                if ((mask & Interop.Inotify.IN_Q_OVERFLOW) != 0)
                {
                    overflowed = true;
                }

                changed.Add(wd);
                offset += 16 + (nint)len;
            }
        }

        if (overflowed)
        {
            // The kernel's queue was full (fs.inotify.max_queued_events) and dropped events, perhaps a group's
            // "populated 0": without it that job would never end, and shutdown would wait for it forever. Which
            // events were lost cannot be known, so every waited-on group is read again.
            Interlocked.Increment(ref _overflows);
            foreach (var (wd, waiter) in _waiters)
            {
                Check(wd, waiter);
            }
        }
        else
        {
            foreach (var wd in changed)
            {
                if (_waiters.TryGetValue(wd, out var waiter))
                {
                    Check(wd, waiter);
                }
            }
        }

        try
        {
            _loop.Rearm(token);
        }
        catch (IOException)
        {
            // The loop is shutting down.
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _loop.Remove(_token);
            _inotify.Dispose();
        }

        foreach (var waiter in _waiters.Values)
        {
            waiter.Completion.TrySetResult();
        }
    }

    private sealed class Waiter(JobCgroup cgroup)
    {
        public JobCgroup Cgroup { get; } = cgroup;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
