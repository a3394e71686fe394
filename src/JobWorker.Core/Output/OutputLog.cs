using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Output;

/// <summary>
/// A job's output log, read side: the job's supervisor (<c>jobworker-shim</c>) appends the output to the file;
/// any number of readers replay it by offset and follow it live.
/// </summary>
/// <remarks>
/// <para>
/// The file is the only store and the shim its only writer (docs/design-durability.md): the server keeps no
/// bytes in memory and, while nobody reads, no file descriptor either. Readers share one read-only handle,
/// opened by the first and closed by the last, and read by offset (pread), so open fds do not grow with
/// readers. The file only grows; its current size is what readers may read. A reader that has caught up
/// awaits <see cref="_signal"/>, a task completed (and cleared) when the runner's <see cref="LogWatcher"/>
/// sees the shim write (inotify <c>IN_MODIFY</c>), on completion and on disposal: no polling and no timers.
/// See docs/design-output.md.
/// </para>
/// </remarks>
internal sealed class OutputLog : IDisposable
{
    /// <summary>Largest buffer a reader holds (and so the largest chunk it yields).</summary>
    internal const int MaxReadBufferSize = 64 * 1024;

    /// <summary>Smallest buffer a reader rents; reading a short line should not cost 64 KiB.</summary>
    internal const int MinReadBufferSize = 1024;

    private const int TailScanBufferSize = 64 * 1024;

    private readonly LogWatcher? _watcher;
    private readonly Lock _handleLock = new();
    private SafeFileHandle? _handle;
    private int _handleUsers;

    private long _finalLength;
    private volatile bool _complete;
    private volatile bool _disposed;
    private int _activeReaders;

    // Null while nobody waits. A reader that catches up installs one; a change takes it and completes it.
    private TaskCompletionSource? _signal;

    /// <summary>A log at <paramref name="path"/>, which the job's supervisor creates and appends to.</summary>
    /// <param name="path">The log file.</param>
    /// <param name="capBytes">The size cap the supervisor enforces (for status while the job runs).</param>
    /// <param name="watcher">Wakes followers when the file grows; null for a log that is already complete.</param>
    public OutputLog(string path, long capBytes, LogWatcher? watcher)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capBytes);
        Path = path;
        CapBytes = capBytes;
        _watcher = watcher;
    }

    /// <summary>The log file's path.</summary>
    public string Path { get; }

    /// <summary>The log's size cap in bytes.</summary>
    public long CapBytes { get; }

    /// <summary>Bytes stored in the log file: final once complete, the file's current size before.</summary>
    public long Length => _complete ? Volatile.Read(ref _finalLength) : FileLength();

    /// <summary>Whether <see cref="Complete"/> was called: no byte will be added.</summary>
    public bool IsComplete => _complete;

    /// <summary>Readers currently enumerating (diagnostics and tests).</summary>
    internal int ActiveReaders => Volatile.Read(ref _activeReaders);

    /// <summary>The inotify watch descriptor, owned by <see cref="LogWatcher"/>; -1 when not watched.</summary>
    internal int WatchDescriptor { get; set; } = -1;

    /// <summary>
    /// Marks the log complete at <paramref name="length"/> bytes: no more bytes will come. Followers end after the
    /// last byte. Idempotent.
    /// </summary>
    public void Complete(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (_complete)
        {
            return;
        }

        Volatile.Write(ref _finalLength, length);
        _complete = true;
        _watcher?.Unwatch(this);
        Signal();
    }

    /// <summary>
    /// Reads the log as chunks, each with its offset. Without <see cref="OutputReadOptions.Follow"/> it ends at the
    /// bytes stored when it reaches them; with it, it waits for new bytes and ends after the last byte once
    /// <see cref="Complete"/> was called.
    /// </summary>
    /// <remarks>
    /// A chunk's memory is the reader's own buffer and is valid only until the enumerator moves on. A reader holds
    /// at most one buffer of up to 64 KiB, and none while it waits. A reader never blocks the writer or other
    /// readers. Cancelling ends the enumeration with <see cref="OperationCanceledException"/> and releases the
    /// buffer and the wait at once.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">A negative <see cref="OutputReadOptions.FromOffset"/> or
    /// <see cref="OutputReadOptions.TailLines"/>.</exception>
    /// <exception cref="ObjectDisposedException">The log was disposed (the job was removed), now or while reading.</exception>
    public IAsyncEnumerable<OutputChunk> ReadAsync(OutputReadOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.FromOffset < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.FromOffset, "FromOffset must be 0 (the first byte) or more.");
        }

        if (options.TailLines < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.TailLines, "TailLines must be 0 or more.");
        }

        ThrowIfDisposed();
        return ReadCoreAsync(options, cancellationToken);
    }

    /// <summary>Wakes waiting readers: the file may have grown (called by <see cref="LogWatcher"/>).</summary>
    internal void Signal() => Interlocked.Exchange(ref _signal, null)?.TrySetResult();

    /// <summary>Closes the shared handle (readers still reading fail). Waiting readers wake and fail with
    /// <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _watcher?.Unwatch(this);
        lock (_handleLock)
        {
            // SafeHandle reference counting defers the close until a pread in progress returns, so a reader can
            // never read from an fd number that was closed and reused.
            _handle?.Dispose();
            _handle = null;
        }

        Signal();
    }

    private async IAsyncEnumerable<OutputChunk> ReadCoreAsync(OutputReadOptions options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _activeReaders);
        byte[]? buffer = null;
        var handle = AcquireHandle();
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (position, tailBounded) = options.TailLines is int lines ? FindTailStart(handle, lines, options.MaxTailScanBytes) : (options.FromOffset, false);

            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                ThrowIfDisposed();

                // Completion is read before the length: if it says complete, the length read after it is final.
                bool complete = _complete;
                long length = complete ? Volatile.Read(ref _finalLength) : CurrentLength(handle);
                if (position < length)
                {
                    long available = length - position;
                    if (buffer is null || (buffer.Length < MaxReadBufferSize && available > buffer.Length))
                    {
                        ReturnReadBuffer(ref buffer);
                        buffer = ArrayPool<byte>.Shared.Rent(ReadBufferSizeFor(available));
                    }

                    int read = handle is null ? 0 : RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, available)), position);
                    if (read <= 0)
                    {
                        throw new IOException($"Output log '{Path}' is shorter than the {length} bytes recorded; was it modified outside the server?");
                    }

                    yield return new OutputChunk(position, buffer.AsMemory(0, read)) { TailBounded = tailBounded };
                    tailBounded = false;
                    position += read;
                    continue;
                }

                if (!options.Follow || complete)
                {
                    yield break;
                }

                // Caught up: give the buffer back before a wait that may last for hours, so idle followers hold
                // no buffer at all.
                ReturnReadBuffer(ref buffer);
                await WaitForChangeAsync(handle, length, cancellationToken).ConfigureAwait(false);
                handle ??= AcquireHandleIfCreated();
            }
        }
        finally
        {
            ReturnReadBuffer(ref buffer);
            ReleaseHandle(handle);
            Interlocked.Decrement(ref _activeReaders);
        }
    }

    /// <summary>The shared read handle (opened by the first reader); null while the file does not exist yet.</summary>
    private SafeFileHandle? AcquireHandle()
    {
        lock (_handleLock)
        {
            ThrowIfDisposed();
            if (_handle is null)
            {
                try
                {
                    _handle = File.OpenHandle(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                }
                catch (FileNotFoundException)
                {
                    return null;
                }
                catch (DirectoryNotFoundException)
                {
                    return null;
                }
            }

            _handleUsers++;
            return _handle;
        }
    }

    private SafeFileHandle? AcquireHandleIfCreated() => File.Exists(Path) ? AcquireHandle() : null;

    private void ReleaseHandle(SafeFileHandle? handle)
    {
        if (handle is null)
        {
            return;
        }

        lock (_handleLock)
        {
            if (--_handleUsers == 0 && ReferenceEquals(_handle, handle))
            {
                // The last reader closes it: a job nobody reads costs the server no file descriptor.
                _handle.Dispose();
                _handle = null;
            }
        }
    }

    private static long CurrentLength(SafeFileHandle? handle) => handle is null ? 0 : RandomAccess.GetLength(handle);

    private long FileLength()
    {
        var info = new FileInfo(Path);
        return info.Exists ? info.Length : 0;
    }

    private static int ReadBufferSizeFor(long available)
        => (int)Math.Clamp(BitOperations.RoundUpToPowerOf2((ulong)Math.Min(available, MaxReadBufferSize)), MinReadBufferSize, MaxReadBufferSize);

    private static void ReturnReadBuffer(ref byte[]? buffer)
    {
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            buffer = null;
        }
    }

    /// <summary>
    /// Completes when the length differs from <paramref name="knownLength"/>, the log completes or is disposed.
    /// </summary>
    private Task WaitForChangeAsync(SafeFileHandle? handle, long knownLength, CancellationToken cancellationToken)
    {
        var signal = Volatile.Read(ref _signal);
        if (signal is null)
        {
            var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            signal = Interlocked.CompareExchange(ref _signal, fresh, null) ?? fresh;
        }

        // Watch the file (once per log), then look: a write before the watch is seen by the look, a write after
        // it raises an event that completes this signal.
        _watcher?.Watch(this);
        if (_complete || _disposed || (handle is null ? File.Exists(Path) : CurrentLength(handle) != knownLength))
        {
            return Task.CompletedTask;
        }

        // WaitAsync removes its continuation when cancelled, so a cancelled follower leaves nothing behind.
        return signal.Task.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// The offset where the last <paramref name="lines"/> lines start, for the bytes stored now, looking back at most
    /// <paramref name="maxScanBytes"/>; and whether that window held fewer lines than asked (the start is then the
    /// window's first whole line, or its first byte if it holds no line break).
    /// </summary>
    /// <remarks>
    /// A line ends at '\n'; a final run of bytes without one is a line too. So with a trailing newline we skip it and
    /// stop after the N-th newline before it; without, after the N-th newline from the end. The byte just before the
    /// window is read too: a line that starts exactly at the window's first byte is whole.
    /// </remarks>
    private (long Start, bool Bounded) FindTailStart(SafeFileHandle? handle, int lines, long maxScanBytes)
    {
        long end = _complete ? Volatile.Read(ref _finalLength) : CurrentLength(handle);
        if (lines == 0 || end == 0 || handle is null)
        {
            return (end, false);
        }

        long window = Math.Max(1, maxScanBytes);
        long windowStart = Math.Max(0, end - window);
        long scanFloor = Math.Max(0, windowStart - 1);
        var buffer = ArrayPool<byte>.Shared.Rent(TailScanBufferSize);
        try
        {
            int newlinesToPass = lines;
            long scanEnd = end;
            long earliestLineStart = -1;
            bool first = true;
            while (scanEnd > scanFloor)
            {
                int size = (int)Math.Min(TailScanBufferSize, scanEnd - scanFloor);
                long scanStart = scanEnd - size;
                var span = buffer.AsSpan(0, size);
                int read = RandomAccess.Read(handle, span, scanStart);
                if (read != size)
                {
                    throw new IOException($"Output log '{Path}' is shorter than the {end} bytes recorded; was it modified outside the server?");
                }

                if (first)
                {
                    first = false;
                    if (span[^1] == (byte)'\n')
                    {
                        // The final newline ends the last line; it does not start a new one.
                        span = span[..^1];
                    }
                }

                while (true)
                {
                    int index = span.LastIndexOf((byte)'\n');
                    if (index < 0)
                    {
                        break;
                    }

                    earliestLineStart = scanStart + index + 1;
                    if (--newlinesToPass == 0)
                    {
                        return (earliestLineStart, false);
                    }

                    span = span[..index];
                }

                scanEnd = scanStart;
            }

            // Fewer lines than asked for: everything, unless the log reaches back past the window.
            return windowStart == 0 ? (0, false) : (earliestLineStart >= 0 ? earliestLineStart : windowStart, true);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void ThrowIfDisposed()
    {
        if (_disposed)
        {
            throw new ObjectDisposedException(nameof(OutputLog), "The job's output log was closed (the job was removed).");
        }
    }
}
