using JobWorker.Core.Jobs;
using JobWorker.Core.State;

namespace JobWorker.Core.Tests.State;

public sealed class StateFormatTests
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    [Fact]
    public void Open_NewDirectory_CreatesVersionedPrivateLayout()
    {
        using var temp = TempStateDirectory.Create();

        using var store = FileJobStore.Open(temp.Path + "/");

        Assert.Equal(temp.Path, store.Root);
        Assert.Equal(Private, new DirectoryInfo(temp.Path).UnixFileMode);
        Assert.Equal(Private, new DirectoryInfo(Path.Combine(temp.Path, "jobs")).UnixFileMode);
        Assert.Equal("jobworker-state 1\n", File.ReadAllText(Path.Combine(temp.Path, "format")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(temp.Path, "lock")));
        Assert.Equal(["format", "jobs", "lock"], Directory.EnumerateFileSystemEntries(temp.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Empty(store.Load().Records);
    }

    [Fact]
    public void Open_ExistingDirectory_KeepsItsMode()
    {
        using var temp = TempStateDirectory.Create();
        var mode = Private | UnixFileMode.GroupRead | UnixFileMode.GroupExecute;
        Directory.CreateDirectory(temp.Path, mode);

        using var store = FileJobStore.Open(temp.Path);

        Assert.Equal(mode, new DirectoryInfo(temp.Path).UnixFileMode);
    }

    [Fact]
    public void Open_NewerFormatVersion_RefusedAndNothingChanged()
    {
        using var temp = TempStateDirectory.Create();
        Directory.CreateDirectory(Path.Combine(temp.Path, "jobs", "0123456789abcdef0123456789abcdef"));
        File.WriteAllText(Path.Combine(temp.Path, "format"), "jobworker-state 2\n");
        File.WriteAllText(Path.Combine(temp.Path, "jobs", "0123456789abcdef0123456789abcdef", "record.v2"), "{}");
        var before = temp.Snapshot();

        var ex = Assert.Throws<StateFormatException>(() => FileJobStore.Open(temp.Path));

        Assert.Equal(
            $"State directory {temp.Path} has format version 2, newer than this server reads (version 1): it was written by a " +
            "newer JobWorker server. Use that version or a newer one; nothing was changed.",
            ex.Message);
        Assert.Equal(before, temp.Snapshot()); // in particular no lock file left behind
    }

    [Fact]
    public void Open_NewerFormatWithLockFile_LockFileKeepsItsContent()
    {
        using var temp = TempStateDirectory.Create();
        Directory.CreateDirectory(temp.Path);
        File.WriteAllText(Path.Combine(temp.Path, "format"), "jobworker-state 3\n");
        File.WriteAllText(Path.Combine(temp.Path, "lock"), "777\n");
        var before = temp.Snapshot();

        Assert.Throws<StateFormatException>(() => FileJobStore.Open(temp.Path));

        Assert.Equal(before, temp.Snapshot());

        // and the refusal released the lock
        Assert.Throws<StateFormatException>(() => FileJobStore.Open(temp.Path));
    }

    [Theory]
    [InlineData("")]
    [InlineData("jobworker-state\n")]
    [InlineData("jobworker-state one\n")]
    [InlineData("jobworker-state 0\n")]
    [InlineData("jobworker-state -1\n")]
    [InlineData("jobworker-state 1 extra\n")]
    [InlineData("sqlite format 3\0")]
    public void Open_GarbageFormatFile_ClearErrorAndNothingChanged(string content)
    {
        using var temp = TempStateDirectory.Create();
        Directory.CreateDirectory(temp.Path);
        File.WriteAllText(Path.Combine(temp.Path, "format"), content);
        var before = temp.Snapshot();

        var ex = Assert.Throws<StateFormatException>(() => FileJobStore.Open(temp.Path));

        Assert.Contains($"State directory {temp.Path} is not a JobWorker state directory: {temp.Path}/format holds", ex.Message, StringComparison.Ordinal);
        Assert.Contains("not 'jobworker-state <version>'", ex.Message, StringComparison.Ordinal);
        Assert.Equal(Path.Combine(temp.Path, "format"), ex.Path);
        Assert.Equal(before, temp.Snapshot());
    }

    [Fact]
    public void Open_NoFormatButOtherFiles_RefusedAndNothingChanged()
    {
        using var temp = TempStateDirectory.Create();
        Directory.CreateDirectory(temp.Path);
        File.WriteAllText(Path.Combine(temp.Path, "passwd"), "root:x:0:0\n");
        var before = temp.Snapshot();

        var ex = Assert.Throws<JobWorkerException>(() => FileJobStore.Open(temp.Path));

        Assert.Contains("has no format file but is not empty (it holds passwd)", ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, temp.Snapshot());
    }

    [Fact]
    public void Open_FormatWriteInterruptedByCrash_Initialized()
    {
        using var temp = TempStateDirectory.Create();
        Directory.CreateDirectory(temp.Path);
        File.WriteAllText(Path.Combine(temp.Path, "lock"), "123\n");
        File.WriteAllText(Path.Combine(temp.Path, "format.tmp"), "jobwor");

        using var store = FileJobStore.Open(temp.Path);

        Assert.Equal("jobworker-state 1\n", File.ReadAllText(Path.Combine(temp.Path, "format")));
        Assert.False(File.Exists(Path.Combine(temp.Path, "format.tmp")));
    }

    [Fact]
    public void Open_Version1Fixture_LoadsExactValues()
    {
        using var temp = TempStateDirectory.FromFixture("state-v1");
        var running = Guid.Parse("3f2a6c1e-8b4d-4f0a-9e7c-5b3a1d2e4f60");
        var ended = Guid.Parse("9c1b7d3e-5f6a-4b2c-8d0e-1f2a3b4c5d6e");

        using var store = FileJobStore.Open(temp.Path);
        var contents = store.Load();

        Assert.Empty(contents.Problems);
        Assert.Equal([ended, running], contents.Records.Select(r => r.Id)); // oldest first

        var e = contents.Records[0];
        Assert.Equal("/bin/sh", e.Spec.Command);
        Assert.Equal(["-c", "echo done; exit 3"], e.Spec.Arguments);
        Assert.Empty(e.Spec.Environment);
        Assert.Equal("/tmp", e.Spec.WorkingDirectory);
        Assert.True(e.Spec.Limits.IsEmpty);
        Assert.Equal(JobIsolation.None, e.Spec.Isolation);
        Assert.Equal("CN=bob", e.Spec.Owner);
        Assert.Null(e.RequestId);
        Assert.Equal(new DateTimeOffset(2026, 11, 29, 9, 0, 0, 250, TimeSpan.Zero), e.CreatedAt);
        Assert.Null(e.StopRequestedAt);
        Assert.Null(e.StopDeadline);
        Assert.Equal(
            new JobStatus
            {
                State = JobState.Exited,
                Pid = 40001,
                ExitCode = 3,
                StartedAt = new DateTimeOffset(2026, 11, 29, 9, 0, 0, 300, TimeSpan.Zero).AddTicks(7),
                EndedAt = new DateTimeOffset(2026, 11, 29, 9, 0, 12, 456, TimeSpan.Zero),
                Usage = new JobUsage { CpuUsageMicroseconds = 1500, MemoryPeakBytes = 2 << 20, OomKills = 0 },
                LogBytes = 5,
            },
            e.Final);

        var r = contents.Records[1];
        Assert.Equal("/usr/bin/sleep", r.Spec.Command);
        Assert.Equal(["3600"], r.Spec.Arguments);
        Assert.Equal(new Dictionary<string, string> { ["GREETING"] = "hello" }, r.Spec.Environment);
        Assert.Null(r.Spec.WorkingDirectory);
        Assert.Equal(0.5, r.Spec.Limits.CpuCores);
        Assert.Equal(128L << 20, r.Spec.Limits.MemoryBytes);
        Assert.Null(r.Spec.Limits.MaxProcesses);
        Assert.Empty(r.Spec.Limits.Io);
        Assert.Equal(JobIsolation.Pid | JobIsolation.Mount | JobIsolation.Network, r.Spec.Isolation); // "All" before IPC and UTS existed
        Assert.Equal("CN=alice", r.Spec.Owner);
        Assert.Equal("req-1", r.RequestId);
        Assert.Equal(new DateTimeOffset(2026, 11, 29, 10, 0, 0, 123, TimeSpan.Zero).AddTicks(4567), r.CreatedAt);
        Assert.Null(r.Final);

        Assert.Equal(
            new ShimStatus { Version = 1, ShimPid = 41000, Pid = 41001, StartedAt = new DateTimeOffset(2026, 11, 29, 10, 0, 0, 200, TimeSpan.Zero).AddTicks(1234) },
            store.ReadShimStatus(running));
        Assert.Equal(
            new ShimStatus
            {
                Version = 1,
                ShimPid = 40000,
                Pid = 40001,
                StartedAt = new DateTimeOffset(2026, 11, 29, 9, 0, 0, 300, TimeSpan.Zero).AddTicks(7),
                Exit = ShimExitKind.Exited,
                ExitCode = 3,
                EndedAt = new DateTimeOffset(2026, 11, 29, 9, 0, 12, 456, TimeSpan.Zero),
                LogBytes = 5,
                LogDroppedBytes = 0,
                LogErrno = 0,
                OutputIncomplete = false,
            },
            store.ReadShimStatus(ended));
        Assert.Equal("tick 1\ntick 2\n", File.ReadAllText(store.LogPath(running)));
        Assert.Equal("done\n", File.ReadAllText(store.LogPath(ended)));
        Assert.Null(store.ReadShimStatus(Guid.NewGuid()));
        Assert.Equal($"{Environment.ProcessId}\n", TempStateDirectory.ReadTextWithoutLocking(Path.Combine(temp.Path, "lock")));
        Assert.Equal("jobworker-state 1\n", File.ReadAllText(Path.Combine(temp.Path, "format")));
    }
}
