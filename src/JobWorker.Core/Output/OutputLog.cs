using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Output;

/// <summary>
/// A job's output log: the single writer drains the job's pipe into a private file; any number of readers
/// replay it by offset and follow it live.
/// </summary>
/// <remarks>
/// CONTRACT STUB (lead): the engine calls exactly this surface; the output work replaces the bodies.
/// - <see cref="Create"/> creates <c>&lt;directory&gt;/&lt;jobId&gt;.log</c> with mode 0600.
/// - <see cref="DrainFrom"/> is called on a thread-pool thread each time the non-blocking pipe read end is
///   readable, never concurrently for one log; it reads until EAGAIN (returns false) or EOF (returns true).
/// - <see cref="Complete"/> is called once after EOF and after the job's final status is known.
/// </remarks>
internal sealed class OutputLog : IDisposable
{
    private readonly SafeFileHandle _file;
    private readonly string _path;
    private long _length;

    private OutputLog(SafeFileHandle file, string path)
    {
        _file = file;
        _path = path;
    }

    public long Length => Interlocked.Read(ref _length);

    public long DroppedBytes { get; private set; }

    public bool Truncated => DroppedBytes > 0;

    public bool IsComplete { get; private set; }

    public static OutputLog Create(string directory, Guid jobId, long capBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capBytes);
        var path = Path.Combine(directory, $"{jobId:N}.log");
        var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.Read,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        return new OutputLog(stream.SafeFileHandle, path);
    }

    public bool DrainFrom(SafeFileHandle pipe)
    {
        var buffer = new byte[64 * 1024];
        using var stream = new FileStream(new SafeFileHandle(pipe.DangerousGetHandle(), ownsHandle: false), FileAccess.Read, 1);
        while (true)
        {
            int n;
            try
            {
                n = stream.Read(buffer);
            }
            catch (IOException)
            {
                return false; // EAGAIN: drained for now
            }

            if (n == 0)
            {
                return true;
            }

            RandomAccess.Write(_file, buffer.AsSpan(0, n), _length);
            Interlocked.Add(ref _length, n);
        }
    }

    public void Complete() => IsComplete = true;

    public IAsyncEnumerable<OutputChunk> ReadAsync(OutputReadOptions options, CancellationToken cancellationToken)
        => throw new NotImplementedException("Output readers are built by the output work.");

    public void Delete() => File.Delete(_path);

    public void Dispose() => _file.Dispose();
}
