using System.Runtime.InteropServices;
using System.Text;
using JobWorker.Core.Jobs;
using JobWorker.Core.State;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Tests.State;

/// <summary>A state directory of one test (not yet created: the store creates it), removed on dispose.</summary>
internal sealed class TempStateDirectory : IDisposable
{
    private readonly string _parent;

    private TempStateDirectory(string parent)
    {
        _parent = parent;
        Path = System.IO.Path.Combine(parent, "state");
    }

    public string Path { get; }

    public static TempStateDirectory Create() => new(Directory.CreateTempSubdirectory("jobworker-test-state-").FullName);

    /// <summary>A state directory with a copy of a committed fixture (tests/JobWorker.Core.Tests/State/Fixtures/NAME).</summary>
    public static TempStateDirectory FromFixture(string name)
    {
        var temp = Create();
        var source = System.IO.Path.Combine(AppContext.BaseDirectory, "State", "Fixtures", name);
        if (!Directory.Exists(source))
        {
            throw new InvalidOperationException($"fixture {source} was not copied to the test output");
        }

        foreach (var directory in Directory.EnumerateDirectories(source, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(System.IO.Path.Combine(temp.Path, System.IO.Path.GetRelativePath(source, directory)));
        }

        Directory.CreateDirectory(temp.Path);
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            File.Copy(file, System.IO.Path.Combine(temp.Path, System.IO.Path.GetRelativePath(source, file)));
        }

        return temp;
    }

    /// <summary>Every entry under the directory with its type, mode, size and content (files), for before/after comparisons.</summary>
    public string Snapshot()
    {
        var sb = new StringBuilder();
        foreach (var entry in Directory.EnumerateFileSystemEntries(Path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(entry);
            var relative = System.IO.Path.GetRelativePath(Path, entry);
            if (info.Attributes.HasFlag(FileAttributes.Directory))
            {
                sb.Append($"d {relative} {info.UnixFileMode}\n");
            }
            else
            {
                sb.Append($"f {relative} {info.UnixFileMode} {info.Length} {Convert.ToHexString(ReadWithoutLocking(entry))}\n");
            }
        }

        sb.Append($"root {new DirectoryInfo(Path).UnixFileMode}\n");
        return sb.ToString();
    }

    /// <summary>
    /// A file's bytes, read without .NET's advisory locking: File.Read* takes flock(LOCK_SH), which a held state
    /// directory lock (LOCK_EX) refuses.
    /// </summary>
    public static byte[] ReadWithoutLocking(string path)
    {
        int fd = Interop.Files.Open(path, Interop.Files.O_RDONLY | Interop.Files.O_CLOEXEC, 0);
        if (fd < 0)
        {
            throw new IOException($"cannot open {path}: errno {Marshal.GetLastPInvokeError()}");
        }

        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        var buffer = new byte[1 << 20];
        var length = RandomAccess.Read(handle, buffer, 0);
        return buffer[..length];
    }

    public static string ReadTextWithoutLocking(string path) => Encoding.UTF8.GetString(ReadWithoutLocking(path));

    public void Dispose() => Directory.Delete(_parent, recursive: true);

    /// <summary>A record with every field set, the optional collections non-empty.</summary>
    public static JobRecord FullRecord(Guid? id = null) => new()
    {
        Id = id ?? Guid.NewGuid(),
        Spec = new JobSpec("/usr/bin/env", ["-i", "sh", "-c", "echo \"$A\" 'quoted' \u00e9"])
        {
            Environment = new Dictionary<string, string> { ["A"] = "1=2", ["EMPTY"] = string.Empty, ["UNICODE"] = "\u2603" },
            WorkingDirectory = "/var/tmp",
            Limits = new ResourceLimits
            {
                CpuCores = 0.1 + 0.2, // a double that needs all 17 digits
                MemoryBytes = 64L << 20,
                MaxProcesses = 32,
                Io =
                [
                    new IoLimit("8:0") { ReadBytesPerSecond = 1_000_000, WriteBytesPerSecond = 2_000_000, ReadIops = 100, WriteIops = 200 },
                    new IoLimit("/dev/vdb") { WriteIops = 7 },
                ],
            },
            Isolation = JobIsolation.Pid | JobIsolation.Mount,
            Owner = "CN=alice,O=example",
        },
        RequestId = "req-42",
        CreatedAt = new DateTimeOffset(2026, 11, 29, 14, 45, 36, TimeSpan.FromHours(1)).AddTicks(1234567),
        StopRequestedAt = new DateTimeOffset(2026, 11, 29, 14, 46, 0, TimeSpan.Zero).AddTicks(7),
        StopDeadline = new DateTimeOffset(2026, 11, 29, 14, 46, 10, TimeSpan.Zero).AddTicks(7),
        Final = new JobStatus
        {
            State = JobState.Stopped,
            Pid = 4242,
            ExitCode = null,
            Signal = 15,
            OomKilled = true,
            StartedAt = new DateTimeOffset(2026, 11, 29, 14, 45, 36, TimeSpan.Zero).AddTicks(2),
            EndedAt = new DateTimeOffset(2026, 11, 29, 14, 46, 1, TimeSpan.Zero).AddTicks(3),
            Usage = new JobUsage
            {
                CpuUsageMicroseconds = 1,
                CpuThrottledPeriods = 2,
                CpuThrottledMicroseconds = 3,
                MemoryCurrentBytes = 4,
                MemoryPeakBytes = 5,
                OomKills = 6,
                IoReadBytes = 7,
                IoWriteBytes = long.MaxValue,
                PidsCurrent = 9,
            },
            LogBytes = 10,
            LogTruncated = true,
            LogDroppedBytes = 11,
        },
    };

    /// <summary>A running job's record with only the required fields.</summary>
    public static JobRecord MinimalRecord(Guid? id = null, DateTimeOffset? createdAt = null) => new()
    {
        Id = id ?? Guid.NewGuid(),
        Spec = new JobSpec("/bin/true"),
        CreatedAt = createdAt ?? DateTimeOffset.UtcNow,
    };
}
