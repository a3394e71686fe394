using System.Runtime.InteropServices;
using System.Security.Cryptography;
using JobWorker.Core.Output;
using JobWorker.Core.Processes;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Tests.Output;

/// <summary>
/// An <see cref="OutputLog"/> fed the way a job's supervisor feeds it: a writer thread appends to the log file with
/// write(2) in slices of random size, and the log learns of each append through a real <see cref="LogWatcher"/>
/// (inotify) on a real <see cref="EventLoop"/>. The supervisor's own behaviour (cap, full disk, draining the pipe)
/// is tested through real jobs in JobOutputTests.
/// </summary>
internal sealed class LogHarness : IDisposable
{
    private readonly TaskCompletionSource<long> _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ManualResetEventSlim _resume = new(false);
    private readonly EventLoop _loop;
    private readonly LogWatcher _watcher;
    private SafeFileHandle? _file;
    private Thread? _writer;

    private LogHarness(DirectoryInfo directory, SafeFileHandle file, EventLoop loop, LogWatcher watcher, OutputLog log)
    {
        Directory = directory;
        _file = file;
        _loop = loop;
        _watcher = watcher;
        Log = log;
    }

    public DirectoryInfo Directory { get; }

    public OutputLog Log { get; }

    /// <summary>Completes with the byte count once the writer has appended everything and closed the file.</summary>
    public Task<long> Drained => _drained.Task;

    /// <summary>Completes when the writer has written <c>pauseAt</c> bytes and waits for <see cref="Resume"/>.</summary>
    public Task Paused => _paused.Task;

    private readonly TaskCompletionSource _paused = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static LogHarness Create(long capBytes = 1L << 30)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("jobworker-output-test-");
        var path = Path.Combine(directory.FullName, "output.log");
        var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite);
        var loop = new EventLoop();
        var watcher = new LogWatcher(loop);
        return new LogHarness(directory, file, loop, watcher, new OutputLog(path, capBytes, watcher));
    }

    public static byte[] RandomBytes(int count, int seed)
    {
        var data = new byte[count];
        new Random(seed).NextBytes(data);
        return data;
    }

    public static string Sha256(ReadOnlySpan<byte> data) => Convert.ToHexString(SHA256.HashData(data));

    /// <summary>
    /// Starts a writer thread that appends <paramref name="data"/> in slices of random size (1 byte to 256 KiB, like
    /// a real program), optionally pausing after <paramref name="pauseAt"/> bytes until <see cref="Resume"/>, then
    /// closes the file. The returned task completes when the writer is done.
    /// </summary>
    public Task WriteAndCloseAsync(byte[] data, long pauseAt = -1, int seed = 1)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _writer = new Thread(() =>
        {
            try
            {
                var random = new Random(seed);
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
                    WriteAll(_file!, data.AsSpan(offset, size));
                    offset += size;
                }

                CloseWriteEnd();
                _drained.TrySetResult(data.Length);
                done.TrySetResult();
            }
            catch (Exception e)
            {
                _drained.TrySetException(e);
                done.TrySetException(e);
            }
        })
        { IsBackground = true, Name = "test log writer" };
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

    /// <summary>Waits until the writer is done, then marks the log complete like the engine does.</summary>
    public async Task CompleteWhenDrainedAsync(CancellationToken cancellationToken)
    {
        var length = await Drained.WaitAsync(cancellationToken);
        Log.Complete(length);
    }

    /// <summary>Closes the file; without a writer thread the log is then drained at its current length.</summary>
    public void CloseWriteEnd()
    {
        Interlocked.Exchange(ref _file, null)?.Dispose();
        if (_writer is null)
        {
            var file = new FileInfo(Log.Path);
            _drained.TrySetResult(file.Exists ? file.Length : 0);
        }
    }

    public void Dispose()
    {
        // Order matters: release a paused writer, let it finish, then close the rest. Nothing this harness started
        // outlives it.
        _resume.Set();
        _writer?.Join();
        CloseWriteEnd();
        Log.Dispose();
        _watcher.Dispose();
        _loop.Dispose();
        _resume.Dispose();
        Directory.Delete(recursive: true);
    }
}
