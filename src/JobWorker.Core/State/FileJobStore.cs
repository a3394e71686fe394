using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using JobWorker.Core.Jobs;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.State;

/// <summary>
/// <see cref="IJobStore"/> over a state directory (docs/design-durability.md, "Files"):
/// <c>&lt;state&gt;/format</c>, <c>&lt;state&gt;/lock</c> and <c>&lt;state&gt;/jobs/&lt;id:N&gt;/{job.json,output.log,shim.status}</c>.
/// Each record is replaced atomically (written to <c>job.json.tmp</c> in the job's directory, then renamed over
/// <c>job.json</c>), so a crash or a full disk leaves every record either old or new, never torn, and never touches
/// another job's files.
/// </summary>
internal sealed class FileJobStore : IJobStore
{
    /// <summary>The state directory format this server writes and the newest it reads.</summary>
    public const int FormatVersion = 1;

    internal const string FormatFileName = "format";
    internal const string LockFileName = "lock";
    internal const string JobsDirectoryName = "jobs";
    internal const string RecordFileName = "job.json";
    internal const string LogFileName = "output.log";
    internal const string ShimStatusFileName = "shim.status";
    internal const string SparesDirectoryName = "spares";
    internal const string GroupsAheadDirectoryName = "ahead";

    /// <summary>How many job directories <see cref="PrepareAhead"/> keeps made ahead of their starts.</summary>
    internal const int SpareDirectories = 2;

    private const string FormatPrefix = "jobworker-state ";
    private const string TemporarySuffix = ".tmp";
    private const string DeletingSuffix = ".deleting";
    private const UnixFileMode PrivateDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const int PrivateFile = 0b110_000_000; // 0600

    /// <summary>
    /// Whether job records are flushed to disk (<c>fsync</c> of the file and its directory) before a write returns.
    /// Off: a record survives the death of any process without it, and a power loss or kernel crash also ends every
    /// job, which the server then reconciles as lost; a flush would put milliseconds of disk latency on every start
    /// (docs/design-durability.md, "No fsync on the start path"). The format file is always flushed: it is written once.
    /// </summary>
    private const bool FlushRecords = false;

    // The files a start creates, made empty in each spare directory (see MakeSpare).
    private static readonly string[] SpareFiles = [RecordFileName + TemporarySuffix, LogFileName, ShimStatusFileName + TemporarySuffix];

    // Writes to one job's files are serialized (they share job.json.tmp); different jobs proceed in parallel.
    private readonly Lock[] _jobLocks = [.. Enumerable.Range(0, 64).Select(_ => new Lock())];
    private readonly SafeFileHandle _lock;
    private readonly string _jobs;
    private readonly string _spares;
    private readonly string _groupsAhead;

    // Directories made ahead (PrepareAhead): the queue under _spareQueueLock (taken briefly by a start); making and
    // removing them under _spareMakingLock (a start never waits for it).
    private readonly Queue<string> _spareQueue = new();
    private readonly Lock _spareQueueLock = new();
    private readonly Lock _spareMakingLock = new();
    private volatile bool _sparesUnusable;
    private volatile bool _disposed;

    private FileJobStore(string root, SafeFileHandle lockHandle)
    {
        Root = root;
        _lock = lockHandle;
        _jobs = Path.Combine(root, JobsDirectoryName);
        _spares = Path.Combine(root, SparesDirectoryName);
        _groupsAhead = Path.Combine(root, GroupsAheadDirectoryName);
    }

    /// <inheritdoc/>
    public string Root { get; }

    /// <summary>
    /// Opens (creating it 0700 if needed) and locks a state directory. Held until <see cref="Dispose"/>.
    /// </summary>
    /// <param name="stateDirectory">An absolute path; an existing directory keeps its mode.</param>
    /// <exception cref="JobWorkerException">
    /// Another server holds the directory (the message names its pid); the directory's format is newer than
    /// <see cref="FormatVersion"/> or not a JobWorker state directory (<see cref="StateFormatException"/>). When
    /// refusing, nothing in the directory is changed.
    /// </exception>
    /// <exception cref="IOException">The directory cannot be created or read.</exception>
    public static FileJobStore Open(string stateDirectory)
    {
        ArgumentNullException.ThrowIfNull(stateDirectory);
        if (!Path.IsPathFullyQualified(stateDirectory))
        {
            throw new ArgumentException($"StateDirectory must be an absolute path, not '{stateDirectory}'.", nameof(stateDirectory));
        }

        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(stateDirectory));
        Directory.CreateDirectory(root, PrivateDirectory);

        var (lockHandle, createdLockFile) = LockStateDirectory(root);
        var lockPath = Path.Combine(root, LockFileName);
        try
        {
            // Nothing is written before the format is known to be ours: a refused directory stays as it was (the
            // lock file is removed again if this call created it).
            var format = ReadFormat(root);
            if (format is null)
            {
                RequireEmpty(root);
            }

            WritePid(lockHandle, lockPath);
            if (format is null)
            {
                WriteAtomically(root, FormatFileName, Encoding.ASCII.GetBytes($"{FormatPrefix}{FormatVersion}\n"), flush: true);
            }

            var jobs = Path.Combine(root, JobsDirectoryName);
            Directory.CreateDirectory(jobs, PrivateDirectory);
            FinishInterruptedDeletes(jobs);
            RemoveSpares(Path.Combine(root, SparesDirectoryName));
            return new FileJobStore(root, lockHandle);
        }
        catch
        {
            if (createdLockFile)
            {
                // Still locked: anyone who opened the file meanwhile sees it replaced and retries (LockStateDirectory).
                Interop.Files.Unlink(lockPath);
            }

            lockHandle.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public string JobDirectory(Guid id) => Path.Combine(_jobs, id.ToString("N", CultureInfo.InvariantCulture));

    /// <inheritdoc/>
    public string LogPath(Guid id) => Path.Combine(JobDirectory(id), LogFileName);

    /// <inheritdoc/>
    public string ShimStatusPath(Guid id) => Path.Combine(JobDirectory(id), ShimStatusFileName);

    /// <inheritdoc/>
    public void Create(JobRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var directory = JobDirectory(record.Id);
        var content = JobRecordDocument.From(record).Serialize();
        lock (JobLock(record.Id))
        {
            if (TakeSpare() is { } spare && CreateFromSpare(spare, directory, content))
            {
                return;
            }

            if (Interop.Sys.MakeDirectory(directory, 0b111_000_000 /* 0700 */) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                throw errno == Interop.EEXIST
                    ? AlreadyExists(directory, errno)
                    : Interop.CreateIOException(errno, "Cannot create job directory", directory);
            }

            try
            {
                WriteAtomically(directory, RecordFileName, content, FlushRecords);
            }
            catch
            {
                // No directory without a record: a failed create leaves nothing behind.
                Interop.Sys.RemoveDirectory(directory);
                throw;
            }
        }
    }

    /// <inheritdoc/>
    public void PrepareAhead()
    {
        // One caller makes them at a time; the others have nothing to add.
        if (_sparesUnusable || !_spareMakingLock.TryEnter())
        {
            return;
        }

        try
        {
            while (!_disposed && !_sparesUnusable)
            {
                lock (_spareQueueLock)
                {
                    if (_spareQueue.Count >= SpareDirectories)
                    {
                        return;
                    }
                }

                // Out of space or inodes: the starts make their directories themselves, and report what fails.
                if (MakeSpare() is not { } spare)
                {
                    return;
                }

                lock (_spareQueueLock)
                {
                    _spareQueue.Enqueue(spare);
                }
            }
        }
        finally
        {
            _spareMakingLock.Exit();
        }
    }

    /// <summary>How many directories made ahead wait for a start now (for tests).</summary>
    internal int SpareCount
    {
        get
        {
            lock (_spareQueueLock)
            {
                return _spareQueue.Count;
            }
        }
    }

    /// <inheritdoc/>
    public void Update(JobRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var content = JobRecordDocument.From(record).Serialize();
        lock (JobLock(record.Id))
        {
            WriteAtomically(JobDirectory(record.Id), RecordFileName, content, FlushRecords);
        }
    }

    /// <inheritdoc/>
    public void Delete(Guid id)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var directory = JobDirectory(id);

        // Renamed first, in one step, so a crash half-way through the removal never leaves a log or status file
        // without its record under a job's name; Open finishes what is left. The name is unique, so the removal
        // (slow for a large log) runs outside the job's lock and never meets a leftover of an earlier one.
        var deleting = Path.Combine(_jobs, $".{id:N}-{Guid.NewGuid():N}{DeletingSuffix}");
        lock (JobLock(id))
        {
            if (Interop.Files.Rename(directory, deleting) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Interop.ENOENT)
                {
                    return;
                }

                throw Interop.CreateIOException(errno, "Cannot remove job directory", directory);
            }
        }

        Directory.Delete(deleting, recursive: true);
    }

    /// <inheritdoc/>
    public void RecordGroupAhead(string name, string userDirectory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckGroupAheadName(name);
        Directory.CreateDirectory(_groupsAhead, PrivateDirectory);
        WriteAtomically(_groupsAhead, name, Encoding.UTF8.GetBytes(userDirectory), FlushRecords);
    }

    /// <inheritdoc/>
    public void ForgetGroupAhead(string name)
    {
        CheckGroupAheadName(name);
        Interop.Files.Unlink(Path.Combine(_groupsAhead, name));
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, string UserDirectory)> GroupsAhead()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!Directory.Exists(_groupsAhead))
        {
            return [];
        }

        var found = new List<(string, string)>();
        foreach (var file in Directory.EnumerateFiles(_groupsAhead))
        {
            var name = Path.GetFileName(file);
            if (!name.EndsWith(TemporarySuffix, StringComparison.Ordinal))
            {
                found.Add((name, File.ReadAllText(file, Encoding.UTF8)));
            }
            else
            {
                // A record cut by a crash before its rename: the group it was for was never made.
                Interop.Files.Unlink(file);
            }
        }

        return found;
    }

    private static void CheckGroupAheadName(string name)
    {
        if (name.Length == 0 || name.Contains('/', StringComparison.Ordinal) || name.StartsWith('.') || name.EndsWith(TemporarySuffix, StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{name}' is not a name for a group made ahead.", nameof(name));
        }
    }

    /// <inheritdoc/>
    public StoreContents Load()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var records = new List<JobRecord>();
        var problems = new List<StoreProblem>();
        foreach (var directory in Directory.EnumerateFileSystemEntries(_jobs))
        {
            var name = Path.GetFileName(directory);
            if (name.EndsWith(DeletingSuffix, StringComparison.Ordinal) && name.StartsWith('.'))
            {
                continue; // a delete in progress
            }

            if (!Guid.TryParseExact(name, "N", out var id) || name != id.ToString("N", CultureInfo.InvariantCulture))
            {
                problems.Add(new StoreProblem(directory, "not a job directory: its name is not a job id"));
                continue;
            }

            var (record, reason) = ReadRecord(directory, id);
            if (record is not null)
            {
                records.Add(record);
            }
            else if (reason is not null)
            {
                problems.Add(new StoreProblem(directory, reason));
            }
        }

        records.Sort((a, b) => a.CreatedAt != b.CreatedAt ? a.CreatedAt.CompareTo(b.CreatedAt) : a.Id.CompareTo(b.Id));
        return new StoreContents(records, problems);
    }

    /// <inheritdoc/>
    public ShimStatus? ReadShimStatus(Guid id)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var path = ShimStatusPath(id);
        string text;
        try
        {
            text = File.ReadAllText(path, Encoding.UTF8);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }

        return ShimStatus.Parse(text, path);
    }

    /// <summary>Releases the state directory's lock.</summary>
    public void Dispose()
    {
        _disposed = true;
        lock (_spareMakingLock)
        {
            lock (_spareQueueLock)
            {
                _spareQueue.Clear();
            }

            DeleteQuietly(_spares);
        }

        _lock.Dispose();
    }

    private static IOException AlreadyExists(string directory, int errno)
        => new($"Cannot create job directory {directory}: it already exists (job ids must be unique).", errno);

    private string? TakeSpare()
    {
        if (_sparesUnusable)
        {
            return null;
        }

        lock (_spareQueueLock)
        {
            return _spareQueue.TryDequeue(out var spare) ? spare : null;
        }
    }

    /// <summary>
    /// A job directory made ahead: 0700, holding empty <c>job.json.tmp</c>, <c>output.log</c> and
    /// <c>shim.status.tmp</c>, the files a start would otherwise create (each an inode allocation, which after a
    /// quiet spell can wait for the disk). Null when it cannot be made; nothing is left behind then.
    /// </summary>
    private string? MakeSpare()
    {
        var spare = Path.Combine(_spares, Guid.NewGuid().ToString("N", CultureInfo.InvariantCulture));
        try
        {
            Directory.CreateDirectory(_spares, PrivateDirectory);
            if (Interop.Sys.MakeDirectory(spare, 0b111_000_000 /* 0700 */) != 0)
            {
                return null;
            }

            foreach (var name in SpareFiles)
            {
                const int Flags = Interop.Files.O_WRONLY | Interop.Files.O_CREAT | Interop.Files.O_EXCL | Interop.Files.O_NOFOLLOW | Interop.Files.O_CLOEXEC;
                int fd = Interop.Files.Open(Path.Combine(spare, name), Flags, PrivateFile);
                if (fd < 0)
                {
                    DeleteQuietly(spare);
                    return null;
                }

                new SafeFileHandle(fd, ownsHandle: true).Dispose();
            }

            return spare;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            DeleteQuietly(spare);
            return null;
        }
    }

    /// <summary>
    /// Writes the record into <paramref name="spare"/>, then renames it to <paramref name="directory"/> (never over an
    /// existing one): the job exists, record and all, in one step; a crash before it leaves only a spare, which the
    /// next <see cref="Open"/> removes. False when any step fails (the spare is removed): the caller then makes the
    /// directory itself, and that path reports what is wrong (a full disk, an existing directory) naming the job's
    /// own files.
    /// </summary>
    private bool CreateFromSpare(string spare, string directory, byte[] content)
    {
        try
        {
            WriteAtomically(spare, RecordFileName, content, FlushRecords);
            if (Interop.Files.RenameAt2(Interop.Files.AT_FDCWD, spare, Interop.Files.AT_FDCWD, directory, Interop.Files.RENAME_NOREPLACE) == 0)
            {
                return true;
            }

            // A file system that cannot rename without replacing gets no more spares.
            _sparesUnusable |= Marshal.GetLastPInvokeError() == Interop.EINVAL;
        }
        catch (IOException)
        {
            // As below.
        }

        DeleteQuietly(spare);
        return false;
    }

    private static void DeleteQuietly(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Gone already (DirectoryNotFoundException), or removed with the rest by the next Open.
        }
    }

    /// <summary>Removes the directories made ahead (by this store, or by one that ended without removing them): none holds a job.</summary>
    private static void RemoveSpares(string spares)
    {
        if (Directory.Exists(spares))
        {
            Directory.Delete(spares, recursive: true);
        }
    }

    private Lock JobLock(Guid id) => _jobLocks[(id.GetHashCode() & int.MaxValue) % _jobLocks.Length];

    // A record, or why there is none, or neither when the directory has gone since it was listed.
    private static (JobRecord? Record, string? Reason) ReadRecord(string directory, Guid id)
    {
        byte[] json;
        try
        {
            json = File.ReadAllBytes(Path.Combine(directory, RecordFileName));
        }
        catch (DirectoryNotFoundException)
        {
            return (null, null); // removed since it was listed
        }
        catch (FileNotFoundException)
        {
            return (null, $"no {RecordFileName}: the record was never written (the job did not start) or was removed");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (null, $"{RecordFileName} cannot be read: {ex.Message}");
        }

        try
        {
            var version = JobRecordDocument.ReadVersion(json);
            if (version is null)
            {
                return (null, $"{RecordFileName} has no \"version\"");
            }

            if (version > JobRecordDocument.CurrentVersion)
            {
                return (null, $"{RecordFileName} has version {version}, newer than this server reads ({JobRecordDocument.CurrentVersion}): it was written by a newer JobWorker server");
            }

            if (version < 1)
            {
                return (null, $"{RecordFileName} has version {version}, which is not a version");
            }

            var document = JobRecordDocument.Deserialize(json);
            if (document.Id != id)
            {
                return (null, $"{RecordFileName} is the record of job {document.Id:N}, not of its directory's job");
            }

            return (document.ToRecord(), null);
        }
        catch (JsonException ex)
        {
            return (null, $"{RecordFileName} is not a valid record ({json.Length} bytes): {ex.Message}");
        }
    }

    // Opens (creating if needed) and flocks <root>/lock. A lock file removed and re-created between our open and our
    // flock (a refusing Open unlinks the file it created) would leave us locking a file nobody else can find, so the
    // lock counts only if the path still names the locked file.
    private static (SafeFileHandle Handle, bool Created) LockStateDirectory(string root)
    {
        var path = Path.Combine(root, LockFileName);
        const int Flags = Interop.Files.O_RDWR | Interop.Files.O_NOFOLLOW | Interop.Files.O_CLOEXEC;
        for (int attempt = 0; ; attempt++)
        {
            bool created = true;
            int fd = Interop.Files.Open(path, Flags | Interop.Files.O_CREAT | Interop.Files.O_EXCL, PrivateFile);
            if (fd < 0 && Marshal.GetLastPInvokeError() == Interop.EEXIST)
            {
                created = false;
                fd = Interop.Files.Open(path, Flags, 0);
            }

            if (fd < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Interop.ENOENT && attempt < 10)
                {
                    continue;
                }

                throw Interop.CreateIOException(errno, "Cannot open the state directory's lock file", path);
            }

            var handle = new SafeFileHandle(fd, ownsHandle: true);
            try
            {
                if (!LockHolder.TryLockExclusive(handle, path))
                {
                    throw LockHolder.InUse(handle, root, "state directory", "StateDirectory");
                }

                if (Interop.Locks.Identify(path) == Interop.Locks.Identify(handle, path))
                {
                    return (handle, created);
                }
            }
            catch
            {
                handle.Dispose();
                throw;
            }

            handle.Dispose();
            if (attempt >= 10)
            {
                throw new IOException($"Cannot lock {path}: it keeps being replaced by another process.");
            }
        }
    }

    // Information for people only (a refusal reads the holder from /proc/locks), so a full disk must not stop a
    // server from starting and serving the jobs it has.
    private static void WritePid(SafeFileHandle handle, string path)
    {
        try
        {
            Interop.CheckIo(Interop.Files.Ftruncate(handle, 0), "Cannot write the state directory's lock file", path);
            WriteAll(handle, Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"), path);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The version in <c>&lt;root&gt;/format</c>, or null when there is no such file.</summary>
    private static int? ReadFormat(string root)
    {
        var path = Path.Combine(root, FormatFileName);
        string text;
        try
        {
            using var handle = File.OpenHandle(path);
            var buffer = new byte[256];
            text = Encoding.UTF8.GetString(buffer, 0, RandomAccess.Read(handle, buffer, 0));
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StateFormatException(path, $"State directory {root}: its format file {path} cannot be read: {ex.Message}", ex);
        }

        var line = text.EndsWith('\n') ? text[..^1] : text;
        if (!line.StartsWith(FormatPrefix, StringComparison.Ordinal)
            || !int.TryParse(line.AsSpan(FormatPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var version)
            || version < 1)
        {
            var shown = line.Length > 40 ? line[..40] + "..." : line;
            throw new StateFormatException(
                path,
                $"State directory {root} is not a JobWorker state directory: {path} holds '{shown}', not '{FormatPrefix}<version>'. " +
                "Give this server a new or empty directory (StateDirectory), or restore the file.");
        }

        if (version > FormatVersion)
        {
            throw new StateFormatException(
                path,
                $"State directory {root} has format version {version}, newer than this server reads (version {FormatVersion}): " +
                "it was written by a newer JobWorker server. Use that version or a newer one; nothing was changed.");
        }

        return version;
    }

    // A directory without a format file is taken only when it holds nothing of anyone else's: the user may have
    // pointed StateDirectory at the wrong place, and the server must not start using (or later clean up) it.
    private static void RequireEmpty(string root)
    {
        var others = Directory.EnumerateFileSystemEntries(root)
            .Select(Path.GetFileName)
            .Where(name => name is not (LockFileName or FormatFileName + TemporarySuffix or "lost+found"))
            .Take(4)
            .ToList();
        if (others.Count > 0)
        {
            throw new JobWorkerException(
                $"State directory {root} has no format file but is not empty (it holds {string.Join(", ", others)}): it is not " +
                "a JobWorker state directory. Give this server a new or empty directory (StateDirectory).");
        }
    }

    private static void FinishInterruptedDeletes(string jobs)
    {
        foreach (var leftover in Directory.EnumerateDirectories(jobs, "." + "*" + DeletingSuffix))
        {
            Directory.Delete(leftover, recursive: true);
        }
    }

    /// <summary>
    /// Writes <paramref name="directory"/>/<paramref name="name"/> whole or not at all: the content goes to
    /// <c>name.tmp</c> (created 0600, never through a symlink) and is renamed over the file. On failure the old
    /// file is untouched and the temporary file removed; a temporary file left by a crash is overwritten by the
    /// next write.
    /// </summary>
    internal static void WriteAtomically(string directory, string name, ReadOnlySpan<byte> content, bool flush)
    {
        var path = Path.Combine(directory, name);
        var temporary = path + TemporarySuffix;
        // No O_TRUNC: truncating even an empty file costs ext4 a journal update (0.04–0.1 ms here). The temporary file
        // is new or empty (made ahead, see MakeSpare) unless a crash left a longer one, which is cut after the write.
        const int Flags = Interop.Files.O_WRONLY | Interop.Files.O_CREAT | Interop.Files.O_NOFOLLOW | Interop.Files.O_CLOEXEC;
        int fd = Interop.Files.Open(temporary, Flags, PrivateFile);
        if (fd < 0)
        {
            throw WriteFailed(path, temporary, Marshal.GetLastPInvokeError());
        }

        try
        {
            using (var handle = new SafeFileHandle(fd, ownsHandle: true))
            {
                WriteAll(handle, content, temporary);
                if (RandomAccess.GetLength(handle) > content.Length && Interop.Files.Ftruncate(handle, content.Length) != 0)
                {
                    throw WriteFailed(path, temporary, Marshal.GetLastPInvokeError());
                }

                if (flush && Interop.Files.Fsync(handle) != 0)
                {
                    throw WriteFailed(path, temporary, Marshal.GetLastPInvokeError());
                }
            }

            if (Interop.Files.Rename(temporary, path) != 0)
            {
                throw WriteFailed(path, temporary, Marshal.GetLastPInvokeError());
            }
        }
        catch
        {
            Interop.Files.Unlink(temporary);
            throw;
        }

        if (flush)
        {
            FlushDirectory(directory);
        }
    }

    private static unsafe void WriteAll(SafeFileHandle handle, ReadOnlySpan<byte> content, string path)
    {
        fixed (byte* start = content)
        {
            long written = 0;
            while (written < content.Length)
            {
                nint n = Interop.Files.PWrite(handle, start + written, (nint)(content.Length - written), written);
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == Interop.EINTR)
                    {
                        continue;
                    }

                    throw WriteFailed(path.EndsWith(TemporarySuffix, StringComparison.Ordinal) ? path[..^TemporarySuffix.Length] : path, path, errno);
                }

                written += n;
            }
        }
    }

    private static void FlushDirectory(string directory)
    {
        int fd = Interop.Files.Open(directory, Interop.Files.O_RDONLY | Interop.Files.O_DIRECTORY | Interop.Files.O_CLOEXEC, 0);
        if (fd < 0)
        {
            throw Interop.CreateIOException(Marshal.GetLastPInvokeError(), "Cannot flush directory", directory);
        }

        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        Interop.CheckIo(Interop.Files.Fsync(handle), "Cannot flush directory", directory);
    }

    private static IOException WriteFailed(string path, string temporary, int errno)
    {
        var hint = errno is Interop.ENOSPC or Interop.Files.EDQUOT ? " Free space on its file system; the previous version is kept." : " The previous version is kept.";
        return new IOException($"Cannot write {path} (via {Path.GetFileName(temporary)}): {Interop.Describe(errno)}.{hint}", errno);
    }
}
