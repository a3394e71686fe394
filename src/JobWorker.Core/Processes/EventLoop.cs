using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Processes;

/// <summary>
/// One thread waiting in <c>epoll_wait</c> for every pidfd, output pipe and the cgroup inotify fd of a runner,
/// so 1,000 running jobs need one thread, not 1,000. Registrations are one-shot (<c>EPOLLONESHOT</c>): a ready fd
/// is handed to the thread pool and stays quiet until its handler calls <see cref="Rearm"/>, so a handler never
/// runs concurrently with itself.
/// </summary>
internal sealed class EventLoop : IDisposable
{
    private const ulong WakeToken = 0;

    private readonly SafeFileHandle _epoll;
    private readonly SafeFileHandle _wake;
    private readonly Thread _thread;
    private readonly ConcurrentDictionary<ulong, Registration> _registrations = new();
    private long _nextToken;
    private volatile bool _disposed;

    private readonly Action<Exception>? _onError;

    /// <summary>A loop whose handler exceptions are unhandled (they crash the process): for benchmarks and tests.</summary>
    public EventLoop()
        : this(null)
    {
    }

    /// <param name="onError">Receives exceptions thrown by handlers (they run on the thread pool, with no caller).</param>
    public EventLoop(Action<Exception>? onError)
    {
        _onError = onError;
        _epoll = new SafeFileHandle(Interop.CheckIo(Interop.Epoll.Create(Interop.Epoll.EPOLL_CLOEXEC), "epoll_create1"), ownsHandle: true);
        _wake = new SafeFileHandle(
            Interop.CheckIo(Interop.EventFd.Create(0, Interop.EventFd.EFD_CLOEXEC | Interop.EventFd.EFD_NONBLOCK), "eventfd"),
            ownsHandle: true);
        var ev = new Interop.Epoll.EpollEvent { Events = Interop.Epoll.EPOLLIN, Data = WakeToken };
        Interop.CheckIo(Interop.Epoll.Control(_epoll, Interop.Epoll.EPOLL_CTL_ADD, _wake, ref ev), "epoll_ctl(ADD eventfd)");
        _thread = new Thread(Run) { IsBackground = true, Name = "JobWorker epoll" };
        _thread.Start();
    }

    /// <summary>Descriptors registered now: one per running job (its supervisor's pidfd), plus one per watched log.</summary>
    public int Count => _registrations.Count;

    /// <summary>
    /// Watches <paramref name="fd"/> for readability; <paramref name="onReady"/> runs on the thread pool and gets the
    /// registration's token (for <see cref="Rearm"/>/<see cref="Remove"/>). It can run before Add returns, so
    /// handlers must use that argument, never a field assigned from Add's result.
    /// </summary>
    public ulong Add(SafeHandle fd, Action<ulong> onReady)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var token = (ulong)Interlocked.Increment(ref _nextToken);
        _registrations[token] = new Registration(token, fd, onReady);
        var ev = new Interop.Epoll.EpollEvent { Events = Interop.Epoll.EPOLLIN | Interop.Epoll.EPOLLONESHOT, Data = token };
        if (Interop.Epoll.Control(_epoll, Interop.Epoll.EPOLL_CTL_ADD, fd, ref ev) < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            _registrations.TryRemove(token, out _);
            throw Interop.CreateIOException(errno, "epoll_ctl(ADD)");
        }

        return token;
    }

    /// <summary>
    /// Like <see cref="Add(SafeHandle, Action{ulong})"/> for handlers that know their token otherwise; the
    /// token must be available before the fd can become ready (e.g. registered before anything is written).
    /// </summary>
    public ulong Add(SafeHandle fd, Action onReady) => Add(fd, _ => onReady());

    /// <summary>Watches the fd again after its handler drained it.</summary>
    public void Rearm(ulong token)
    {
        if (!_registrations.TryGetValue(token, out var registration))
        {
            return;
        }

        var ev = new Interop.Epoll.EpollEvent { Events = Interop.Epoll.EPOLLIN | Interop.Epoll.EPOLLONESHOT, Data = token };
        Interop.CheckIo(Interop.Epoll.Control(_epoll, Interop.Epoll.EPOLL_CTL_MOD, registration.Fd, ref ev), "epoll_ctl(MOD)");
    }

    /// <summary>Stops watching; call before disposing the fd.</summary>
    public void Remove(ulong token)
    {
        if (_registrations.TryRemove(token, out var registration) && !_epoll.IsClosed && !registration.Fd.IsClosed)
        {
            var ev = default(Interop.Epoll.EpollEvent);
            _ = Interop.Epoll.Control(_epoll, Interop.Epoll.EPOLL_CTL_DEL, registration.Fd, ref ev);
        }
    }

    private unsafe void Run()
    {
        const int MaxEvents = 64;
        var events = stackalloc Interop.Epoll.EpollEvent[MaxEvents];
        while (!_disposed)
        {
            var n = Interop.Epoll.Wait(_epoll, events, MaxEvents, -1);
            if (n < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == Interop.EINTR)
                {
                    continue;
                }

                // EBADF after Dispose closed the epoll fd: the loop is over.
                return;
            }

            for (var i = 0; i < n; i++)
            {
                var token = events[i].Data;
                if (token == WakeToken)
                {
                    continue;
                }

                if (_registrations.TryGetValue(token, out var registration))
                {
                    ThreadPool.UnsafeQueueUserWorkItem(static state => state.Loop.Invoke(state.Registration), (Loop: this, Registration: registration), preferLocal: false);
                }
            }
        }
    }

    private void Invoke(Registration registration)
    {
        try
        {
            registration.OnReady(registration.Token);
        }
        catch (Exception ex) when (_onError is not null)
        {
            // Never let a handler's bug take the server down through an unhandled thread-pool exception.
            _onError(ex);
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        unsafe
        {
            ulong one = 1;
            _ = Interop.Sys.Write(_wake, (byte*)&one, sizeof(ulong));
        }

        _thread.Join();
        _epoll.Dispose();
        _wake.Dispose();
    }

    private sealed record Registration(ulong Token, SafeHandle Fd, Action<ulong> OnReady);
}
