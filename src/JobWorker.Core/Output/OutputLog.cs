using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Output;

/// <summary>
/// A job's output log: the single writer drains the job's pipe into a private file; any number of readers
/// replay it by offset and follow it live.
/// </summary>
/// <remarks>
/// <para>
/// Contract with the engine:
/// <see cref="Create"/> creates <c>&lt;directory&gt;/&lt;jobId:N&gt;.log</c> with mode 0600.
/// <see cref="DrainFrom"/> is called on a thread-pool thread each time the non-blocking pipe read end is
/// readable, never concurrently for one log; it reads until EAGAIN (returns false) or EOF (returns true).
/// <see cref="StopDraining"/> ends reading for good when the pipe has no EOF in time (a process outside the job
/// holds its write end). <see cref="Complete"/> is called once after EOF or that stop, and after the job's final
/// status is known: no byte is appended to a complete log.
/// </para>
/// <para>
/// The file is the only store: the log keeps no bytes in memory, so a job costs one fd and a small object
/// whatever its output or number of readers. Readers share the writer's fd and read by offset (pread), so open
/// fds do not grow with readers. <see cref="Length"/> only grows, and is published after the bytes are in the
/// file, so a reader never sees a length whose bytes are not readable. A reader that has caught up awaits
/// <see cref="_signal"/>, a task the writer completes (and clears) after every append, on completion and on
/// disposal: no polling and no timers. See docs/design-output.md.
/// </para>
/// </remarks>
internal sealed class OutputLog : IDisposable
{
    /// <summary>Largest buffer a reader holds (and so the largest chunk it yields).</summary>
    internal const int MaxReadBufferSize = 64 * 1024;

    /// <summary>Smallest buffer a reader rents; reading a short line should not cost 64 KiB.</summary>
    internal const int MinReadBufferSize = 1024;

    private const int TailScanBufferSize = 64 * 1024;

    private readonly SafeFileHandle _file;
    private readonly long _capBytes;

    // Written only by the drain (single writer; the dropped count also by CountDropped once the drain stopped for
    // good); read by any reader with Volatile.Read.
    private long _length;
    private long _droppedBytes;

    // Set when a write failed (disk full, quota, I/O error): from then on everything is dropped, so the file
    // stays an exact prefix of the output and offsets keep their meaning.
    private volatile IOException? _writeFailure;

    private volatile bool _complete;
    private volatile bool _drainStopped;
    private volatile bool _disposed;
    private int _activeReaders;

    // Null while nobody waits. A reader that catches up installs one; the writer takes it and completes it.
    private TaskCompletionSource? _signal;

    private OutputLog(SafeFileHandle file, string path, long capBytes)
    {
        _file = file;
        Path = path;
        _capBytes = capBytes;
    }

    /// <summary>The log file's path.</summary>
    public string Path { get; }

    /// <summary>The log's size cap in bytes.</summary>
    public long CapBytes => _capBytes;

    /// <summary>Bytes stored in the log file (never more than <see cref="CapBytes"/>).</summary>
    public long Length => Volatile.Read(ref _length);

    /// <summary>Bytes the job wrote that were discarded (cap reached or the disk refused them).</summary>
    public long DroppedBytes => Volatile.Read(ref _droppedBytes);

    /// <summary>Whether any output was discarded.</summary>
    public bool Truncated => DroppedBytes > 0;

    /// <summary>Why the log stopped storing output before its cap (e.g. disk full), or <see langword="null"/>.</summary>
    public IOException? WriteFailure => _writeFailure;

    /// <summary>Whether <see cref="Complete"/> was called: no byte will be added.</summary>
    public bool IsComplete => _complete;

    /// <summary>Readers currently enumerating (diagnostics and tests).</summary>
    internal int ActiveReaders => Volatile.Read(ref _activeReaders);

    /// <summary>
    /// Creates the log file <c>&lt;directory&gt;/&lt;jobId:N&gt;.log</c>, mode 0600 from the first moment (the mode
    /// is given to <c>open(2)</c>, so there is no window in which another user could open it).
    /// </summary>
    /// <param name="directory">An existing private directory (the runner creates it 0700).</param>
    /// <param name="jobId">The job's id; names the file.</param>
    /// <param name="capBytes">Size cap in bytes; output past it is read and discarded.</param>
    /// <exception cref="IOException">The file exists already, or the directory is missing or not writable.</exception>
    public static OutputLog Create(string directory, Guid jobId, long capBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capBytes);

        var path = System.IO.Path.Combine(directory, $"{jobId:N}.log");

        // O_EXCL: a log is never shared with, or reused from, another job. O_NOFOLLOW: never write through a
        // symlink someone planted. O_CLOEXEC: jobs spawned later must not inherit it.
        const int Flags = Interop.Io.O_RDWR | Interop.Io.O_CREAT | Interop.Io.O_EXCL | Interop.Io.O_NOFOLLOW | Interop.Io.O_CLOEXEC;
        int fd = Interop.Io.Open(path, Flags, 0b110_000_000 /* 0600 */);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            var reason = errno == Interop.Io.EEXIST
                ? "it already exists (job ids must be unique per log directory)"
                : Marshal.GetPInvokeErrorMessage(errno);
            throw new IOException($"Cannot create output log '{path}': {reason}. Check that '{directory}' exists and is writable by the server.", errno);
        }

        return new OutputLog(new SafeFileHandle(fd, ownsHandle: true), path, capBytes);
    }

    /// <summary>
    /// Reads everything the non-blocking <paramref name="pipe"/> holds into the log, and wakes waiting readers.
    /// </summary>
    /// <returns><see langword="true"/> at end of file (every writer closed the pipe) or once <see cref="StopDraining"/>
    /// was called; <see langword="false"/> when the pipe is empty for now (EAGAIN).</returns>
    /// <remarks>
    /// Never blocks on the job and never fails because of the log: past the cap, or once the disk refused a write,
    /// bytes are still read (so the job's writes never stall) and counted in <see cref="DroppedBytes"/>. Must not be
    /// called concurrently for one log.
    /// </remarks>
    /// <exception cref="IOException">Reading the pipe failed with something other than EAGAIN or EINTR (e.g. EBADF).</exception>
    public unsafe bool DrainFrom(SafeFileHandle pipe)
    {
        ArgumentNullException.ThrowIfNull(pipe);
        ObjectDisposedException.ThrowIf(_disposed, this);

        var buffer = DrainBufferPool.Rent();
        try
        {
            fixed (byte* start = buffer)
            {
                while (!_drainStopped)
                {
                    // One read takes everything the pipe holds (up to 1 MiB); it is published at once, so readers
                    // see a trickling job's every write immediately. Coalescing reads would only delay them: a
                    // read shorter than the buffer means the pipe was empty at that moment anyway.
                    nint n = Interop.Io.Read(pipe, start, buffer.Length);
                    if (n > 0)
                    {
                        Append(start, (int)n);
                        continue;
                    }

                    if (n == 0)
                    {
                        return true;
                    }

                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == Interop.Io.EAGAIN)
                    {
                        return false;
                    }

                    if (errno != Interop.Io.EINTR)
                    {
                        throw Interop.Io.ErrnoException(errno, "read from the job's output pipe");
                    }
                }

                return true;
            }
        }
        finally
        {
            DrainBufferPool.Return(buffer);
        }
    }

    /// <summary>
    /// Makes <see cref="DrainFrom"/> stop for good: one in progress returns after its current read (so the caller
    /// waits at most one read for it), later calls return at once.
    /// </summary>
    public void StopDraining() => _drainStopped = true;

    /// <summary>Counts bytes the job wrote that will never be read (left in the pipe when reading stopped).</summary>
    public void CountDropped(long count) => Interlocked.Add(ref _droppedBytes, count);

    /// <summary>
    /// Marks the log complete: no more bytes will come. Followers end after the last byte. Idempotent.
    /// </summary>
    public void Complete()
    {
        _complete = true;
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

    /// <summary>Deletes the log file. Readers that are open keep reading through the shared handle until disposal.</summary>
    public void Delete() => File.Delete(Path);

    /// <summary>Closes the file. Waiting readers wake and fail with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;

        // SafeHandle reference counting defers the close until a pread in progress returns, so a reader can never
        // read from an fd number that was closed and reused.
        _file.Dispose();
        Signal();
    }

    private async IAsyncEnumerable<OutputChunk> ReadCoreAsync(OutputReadOptions options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _activeReaders);
        byte[]? buffer = null;
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            long position = options.TailLines is int lines ? FindTailStart(lines) : options.FromOffset;

            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                ThrowIfDisposed();

                // Completion is read before the length: if it says complete, the length read after it is final.
                bool complete = _complete;
                long length = Length;
                if (position < length)
                {
                    long available = length - position;
                    if (buffer is null || (buffer.Length < MaxReadBufferSize && available > buffer.Length))
                    {
                        ReturnReadBuffer(ref buffer);
                        buffer = ArrayPool<byte>.Shared.Rent(ReadBufferSizeFor(available));
                    }

                    int read = RandomAccess.Read(_file, buffer.AsSpan(0, (int)Math.Min(buffer.Length, available)), position);
                    if (read <= 0)
                    {
                        throw new IOException($"Output log '{Path}' is shorter than the {length} bytes recorded; was it modified outside the server?");
                    }

                    yield return new OutputChunk(position, buffer.AsMemory(0, read));
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
                await WaitForChangeAsync(length, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            ReturnReadBuffer(ref buffer);
            Interlocked.Decrement(ref _activeReaders);
        }
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
    private Task WaitForChangeAsync(long knownLength, CancellationToken cancellationToken)
    {
        var signal = Volatile.Read(ref _signal);
        if (signal is null)
        {
            var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            signal = Interlocked.CompareExchange(ref _signal, fresh, null) ?? fresh;
        }

        // Checked after the signal is installed: a writer that appended before the install is seen here; one that
        // appends after it takes and completes this signal (the interlocked operations order the two).
        if (Length != knownLength || _complete || _disposed)
        {
            return Task.CompletedTask;
        }

        // WaitAsync removes its continuation when cancelled, so a cancelled follower leaves nothing behind.
        return signal.Task.WaitAsync(cancellationToken);
    }

    private void Signal() => Interlocked.Exchange(ref _signal, null)?.TrySetResult();

    private unsafe void Append(byte* data, int count)
    {
        long length = _length;
        long room = _writeFailure is null ? _capBytes - length : 0;
        int toWrite = (int)Math.Clamp(room, 0, count);
        int written = 0;
        while (written < toWrite)
        {
            nint n = Interop.Io.PWrite(_file, data + written, toWrite - written, length + written);
            if (n > 0)
            {
                written += (int)n;
                continue;
            }

            int errno = n == 0 ? Interop.Io.ENOSPC : Marshal.GetLastPInvokeError();
            if (errno == Interop.Io.EINTR)
            {
                continue;
            }

            // ENOSPC, EDQUOT, EFBIG, EIO…: the server must not fail, and the job must not block. Stop storing
            // (a later retry would leave a hole and break offsets) and count the rest as dropped.
            _writeFailure = Interop.Io.ErrnoException(errno, $"write to output log '{Path}'");
            break;
        }

        if (written > 0)
        {
            Volatile.Write(ref _length, length + written);
        }

        if (written < count)
        {
            Interlocked.Add(ref _droppedBytes, count - written);
        }

        if (written > 0)
        {
            Signal();
        }
    }

    /// <summary>The offset where the last <paramref name="lines"/> lines start, for the bytes stored now.</summary>
    /// <remarks>
    /// A line ends at '\n'; a final run of bytes without one is a line too. So with a trailing newline we skip it and
    /// stop after the N-th newline before it; without, after the N-th newline from the end.
    /// </remarks>
    private long FindTailStart(int lines)
    {
        long end = Length;
        if (lines == 0 || end == 0)
        {
            return end;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(TailScanBufferSize);
        try
        {
            int newlinesToPass = lines;
            long scanEnd = end;
            bool first = true;
            while (scanEnd > 0)
            {
                int size = (int)Math.Min(TailScanBufferSize, scanEnd);
                long scanStart = scanEnd - size;
                var span = buffer.AsSpan(0, size);
                int read = RandomAccess.Read(_file, span, scanStart);
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

                    if (--newlinesToPass == 0)
                    {
                        return scanStart + index + 1;
                    }

                    span = span[..index];
                }

                scanEnd = scanStart;
            }

            return 0; // fewer lines than asked for: everything
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
