using System.Runtime.InteropServices;
using System.Security.Cryptography;
using JobWorker.Core.Output;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Tests.Output;

/// <summary>
/// An <see cref="OutputLog"/> fed by a real pipe, the way the engine feeds it: the read end is non-blocking and a
/// pump thread waits for readability (poll(2), a blocking wait, not a polling loop) and calls
/// <see cref="OutputLog.DrainFrom"/> until EOF. Test code writes into the blocking write end from a writer thread.
/// </summary>
internal sealed class LogHarness : IDisposable
{
    private readonly SafeFileHandle _readEnd;
    private readonly Thread _pump;
    private readonly TaskCompletionSource<bool> _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ManualResetEventSlim _resume = new(false);
    private SafeFileHandle? _writeEnd;
    private Thread? _writer;

    private LogHarness(DirectoryInfo directory, OutputLog log, SafeFileHandle readEnd, SafeFileHandle writeEnd)
    {
        Directory = directory;
        Log = log;
        _readEnd = readEnd;
        _writeEnd = writeEnd;
        _pump = new Thread(Pump) { IsBackground = true, Name = "test drain pump" };
        _pump.Start();
    }

    public DirectoryInfo Directory { get; }

    public OutputLog Log { get; }

    /// <summary>Completes when the pump has seen EOF (the writer closed its end) and drained everything.</summary>
    public Task Drained => _drained.Task;

    /// <summary>Completes when the writer has written <c>pauseAt</c> bytes and waits for <see cref="Resume"/>.</summary>
    public Task Paused => _paused.Task;

    private readonly TaskCompletionSource _paused = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static LogHarness Create(long capBytes = 1L << 30)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("jobworker-output-test-");
        OutputLog? log = null;
        try
        {
            log = OutputLog.Create(directory.FullName, Guid.NewGuid(), capBytes);
            var (readEnd, writeEnd) = Interop.Io.CreatePipe();
            SetNonBlocking(readEnd);
            return new LogHarness(directory, log, readEnd, writeEnd);
        }
        catch
        {
            log?.Dispose();
            directory.Delete(recursive: true);
            throw;
        }
    }

    public static byte[] RandomBytes(int count, int seed)
    {
        var data = new byte[count];
        new Random(seed).NextBytes(data);
        return data;
    }

    public static string Sha256(ReadOnlySpan<byte> data) => Convert.ToHexString(SHA256.HashData(data));

    /// <summary>
    /// Starts a writer thread that writes <paramref name="data"/> in slices of random size (1 byte to 256 KiB, like
    /// a real program), optionally pausing after <paramref name="pauseAt"/> bytes until <see cref="Resume"/>, then
    /// closes the write end. The returned task completes when the writer is done.
    /// </summary>
    public Task WriteAndCloseAsync(byte[] data, long pauseAt = -1, int seed = 1)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _writer = new Thread(() =>
        {
            try
            {
                var random = new Random(seed);
                using var stream = new FileStream(_writeEnd!, FileAccess.Write, bufferSize: 0);
                int offset = 0;
                while (offset < data.Length)
                {
                    if (offset == pauseAt)
                    {
                        _paused.TrySetResult();
                        _resume.Wait();
                    }

                    int limit = pauseAt > offset ? (int)Math.Min(pauseAt - offset, data.Length - offset) : data.Length - offset;
                    int size = Math.Min(limit, random.Next(1, 256 * 1024));
                    stream.Write(data, offset, size);
                    offset += size;
                }

                CloseWriteEnd();
                done.TrySetResult();
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        })
        { IsBackground = true, Name = "test pipe writer" };
        _writer.Start();
        return done.Task;
    }

    public void Resume() => _resume.Set();

    /// <summary>Writes all of <paramref name="data"/> to a pipe end with write(2) (no stream in between).</summary>
    public static unsafe void WriteAll(SafeFileHandle handle, ReadOnlySpan<byte> data)
    {
        fixed (byte* start = data)
        {
            int done = 0;
            while (done < data.Length)
            {
                nint n = Interop.Io.Write(handle, start + done, data.Length - done);
                if (n < 0)
                {
                    throw Interop.Io.ErrnoException(Marshal.GetLastPInvokeError(), "write");
                }

                done += (int)n;
            }
        }
    }

    /// <summary>Waits until the pump drained everything, then marks the log complete like the engine does.</summary>
    public async Task CompleteWhenDrainedAsync(CancellationToken cancellationToken)
    {
        await Drained.WaitAsync(cancellationToken);
        Log.Complete();
    }

    public void CloseWriteEnd() => Interlocked.Exchange(ref _writeEnd, null)?.Dispose();

    public void Dispose()
    {
        // Order matters: release a paused writer, close the write end so the pump sees EOF and ends, then close the
        // rest. Nothing this harness started outlives it.
        _resume.Set();
        _writer?.Join();
        CloseWriteEnd();
        _pump.Join();
        _readEnd.Dispose();
        Log.Dispose();
        _resume.Dispose();
        Directory.Delete(recursive: true);
    }

    private static void SetNonBlocking(SafeFileHandle handle)
    {
        const int F_GETFL = 3, F_SETFL = 4;
        int flags = Interop.Io.Fcntl(handle, F_GETFL, 0);
        if (flags < 0 || Interop.Io.Fcntl(handle, F_SETFL, flags | Interop.Io.O_NONBLOCK) < 0)
        {
            throw Interop.Io.ErrnoException(Marshal.GetLastPInvokeError(), "fcntl(O_NONBLOCK)");
        }
    }

    private unsafe void Pump()
    {
        try
        {
            var pollFd = new Interop.Io.PollFd { Fd = (int)_readEnd.DangerousGetHandle(), Events = Interop.Io.POLLIN };
            while (true)
            {
                // Blocks until readable or hung up (POLLHUP is always reported): a wait, not a polling loop.
                if (Interop.Io.Poll(&pollFd, 1, -1) < 0 && Marshal.GetLastPInvokeError() != Interop.Io.EINTR)
                {
                    throw Interop.Io.ErrnoException(Marshal.GetLastPInvokeError(), "poll");
                }

                if (Log.DrainFrom(_readEnd))
                {
                    _drained.TrySetResult(true);
                    return;
                }
            }
        }
        catch (Exception e)
        {
            _drained.TrySetException(e);
        }
    }
}
