using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using JobWorker.Core.Processes;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Output;

/// <summary>
/// Wakes the followers of running jobs when a supervisor appends to a log: one inotify fd on the runner's event
/// loop, with an <c>IN_MODIFY</c> watch on each log that has had a follower (inotify(7)). Watches cost no file
/// descriptor; a log's watch goes when the log completes or is disposed.
/// </summary>
internal sealed class LogWatcher : IDisposable
{
    private const uint IN_Q_OVERFLOW = 0x4000;

    private readonly EventLoop _loop;
    private readonly SafeFileHandle _inotify;
    private readonly ulong _token;
    private readonly ConcurrentDictionary<int, OutputLog> _logs = new();
    private readonly Lock _lock = new();
    private bool _disposed;

    public LogWatcher(EventLoop loop)
    {
        _loop = loop;
        var fd = Interop.CheckIo(Interop.Inotify.Init(Interop.Inotify.IN_CLOEXEC | Interop.Inotify.IN_NONBLOCK), "inotify_init1");
        _inotify = new SafeFileHandle(fd, ownsHandle: true);
        _token = loop.Add(_inotify, OnReadable);
    }

    /// <summary>Watches <paramref name="log"/>'s file for writes (idempotent).</summary>
    /// <exception cref="IOException">The watch cannot be added (e.g. the inotify watch limit is reached).</exception>
    public void Watch(OutputLog log)
    {
        lock (_lock)
        {
            if (_disposed || log.WatchDescriptor >= 0 || log.IsComplete)
            {
                return;
            }

            var wd = Interop.Inotify.AddWatch(_inotify, log.Path, Interop.Inotify.IN_MODIFY);
            if (wd < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == Interop.ENOENT)
                {
                    return; // not created yet, or removed: the reader looks again
                }

                throw Interop.CreateIOException(errno, "inotify_add_watch (fs.inotify.max_user_watches may be too low)", log.Path);
            }

            log.WatchDescriptor = wd;
            _logs[wd] = log;
        }
    }

    /// <summary>Stops watching <paramref name="log"/> (idempotent).</summary>
    public void Unwatch(OutputLog log)
    {
        lock (_lock)
        {
            var wd = log.WatchDescriptor;
            if (wd < 0)
            {
                return;
            }

            log.WatchDescriptor = -1;
            _logs.TryRemove(new KeyValuePair<int, OutputLog>(wd, log));
            if (!_disposed)
            {
                _ = Interop.Inotify.RemoveWatch(_inotify, wd);
            }
        }
    }

    private void OnReadable(ulong token)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
        }

        var overflow = false;
        var changed = new HashSet<int>();
        DrainEvents(changed, ref overflow);
        if (overflow)
        {
            // The kernel dropped events: any log may have grown. Waking a follower that has nothing new costs one
            // fstat; missing a wake-up would stall it.
            foreach (var log in _logs.Values)
            {
                log.Signal();
            }
        }
        else
        {
            foreach (var wd in changed)
            {
                if (_logs.TryGetValue(wd, out var log))
                {
                    log.Signal();
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

    private unsafe void DrainEvents(HashSet<int> changed, ref bool overflow)
    {
        const int BufferSize = 4096;
        var buffer = stackalloc byte[BufferSize];
        while (true)
        {
            nint n;
            lock (_lock)
            {
                if (_disposed)
                {
                    return;
                }

                n = Interop.Sys.Read(_inotify, buffer, BufferSize);
            }

            if (n <= 0)
            {
                return; // EAGAIN: all events consumed
            }

            // struct inotify_event { int wd; uint32 mask; uint32 cookie; uint32 len; char name[len]; }
            for (nint offset = 0; offset + 16 <= n;)
            {
                var wd = *(int*)(buffer + offset);
                var mask = *(uint*)(buffer + offset + 4);
                var len = *(uint*)(buffer + offset + 12);
                if ((mask & IN_Q_OVERFLOW) != 0)
                {
                    overflow = true;
                }
                else
                {
                    changed.Add(wd);
                }

                offset += 16 + (nint)len;
            }
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

        foreach (var log in _logs.Values)
        {
            log.WatchDescriptor = -1;
            log.Signal();
        }

        _logs.Clear();
    }
}
