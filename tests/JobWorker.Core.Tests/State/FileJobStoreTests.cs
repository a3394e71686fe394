using JobWorker.Core.State;
using JobWorker.Core.Tests.Output;

namespace JobWorker.Core.Tests.State;

public sealed class FileJobStoreTests
{
    [Fact]
    public void Create_EveryField_LoadsEqual()
    {
        using var temp = TempStateDirectory.Create();
        var expected = TempStateDirectory.FullRecord();
        using (var store = FileJobStore.Open(temp.Path))
        {
            store.Create(expected);
        }

        using var reopened = FileJobStore.Open(temp.Path);
        var contents = reopened.Load();

        Assert.Empty(contents.Problems);
        var actual = Assert.Single(contents.Records);
        AssertRecordsEqual(expected, actual);
    }

    [Fact]
    public void GroupsAhead_RecordedKeptAcrossOpensAndForgotten_CutRecordsDroppedBadNamesRefused()
    {
        using var temp = TempStateDirectory.Create();
        var a = Guid.NewGuid().ToString("N");
        var b = Guid.NewGuid().ToString("N");
        using (var store = FileJobStore.Open(temp.Path))
        {
            Assert.Empty(store.GroupsAhead());
            store.RecordGroupAhead(a, "alice");
            store.RecordGroupAhead(b, "%2E%2E");
        }

        // What a crash between writing a record and renaming it into place leaves.
        var ahead = Path.Combine(temp.Path, "ahead");
        File.WriteAllText(Path.Combine(ahead, Guid.NewGuid().ToString("N") + ".tmp"), "bo");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(ahead));

        using var reopened = FileJobStore.Open(temp.Path);
        Assert.Equal([(a, "alice"), (b, "%2E%2E")], reopened.GroupsAhead().OrderBy(g => g.Name == b));
        Assert.Equal(2, Directory.GetFiles(ahead).Length);

        reopened.ForgetGroupAhead(a);
        reopened.ForgetGroupAhead(a); // gone already: fine
        Assert.Equal([(b, "%2E%2E")], reopened.GroupsAhead());
        foreach (var bad in new[] { "", "../jobs", ".hidden", a + ".tmp" })
        {
            Assert.Throws<ArgumentException>(() => reopened.RecordGroupAhead(bad, "alice"));
        }
    }

    [Fact]
    public void Create_OnlyRequiredFields_LoadsNullsAndEmpties()
    {
        using var temp = TempStateDirectory.Create();
        using var store = FileJobStore.Open(temp.Path);
        var expected = TempStateDirectory.MinimalRecord();

        store.Create(expected);
        var actual = Assert.Single(store.Load().Records);

        AssertRecordsEqual(expected, actual);
        Assert.Null(actual.Final);
        Assert.Null(actual.Spec.Isolation);
        Assert.True(actual.Spec.Limits.IsEmpty);
        Assert.Empty(actual.Spec.Environment);
    }

    [Fact]
    public void Create_WritesPrivateDirectoryAndVersionedRecord()
    {
        using var temp = TempStateDirectory.Create();
        using var store = FileJobStore.Open(temp.Path);
        var record = TempStateDirectory.FullRecord();

        store.Create(record);

        var directory = store.JobDirectory(record.Id);
        Assert.Equal(Path.Combine(temp.Path, "jobs", record.Id.ToString("N")), directory);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, new DirectoryInfo(directory).UnixFileMode);
        var json = Path.Combine(directory, "job.json");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(json));
        Assert.Equal(["job.json"], Directory.EnumerateFileSystemEntries(directory).Select(Path.GetFileName));
        var text = File.ReadAllText(json);
        Assert.StartsWith("{\n  \"version\": 1,\n", text, StringComparison.Ordinal);
        Assert.Contains("\"isolation\": \"Pid, Mount\"", text, StringComparison.Ordinal);
        Assert.Contains("\"state\": \"Stopped\"", text, StringComparison.Ordinal);
        Assert.Equal(Path.Combine(directory, "output.log"), store.LogPath(record.Id));
        Assert.Equal(Path.Combine(directory, "shim.status"), store.ShimStatusPath(record.Id));
    }

    [Fact]
    public void Create_DirectoryExists_ThrowsAndKeepsExistingRecord()
    {
        using var temp = TempStateDirectory.Create();
        using var store = FileJobStore.Open(temp.Path);
        var first = TempStateDirectory.MinimalRecord();
        store.Create(first);
        var before = File.ReadAllBytes(Path.Combine(store.JobDirectory(first.Id), "job.json"));

        var ex = Assert.Throws<IOException>(() => store.Create(TempStateDirectory.FullRecord(first.Id)));

        Assert.Contains(store.JobDirectory(first.Id), ex.Message, StringComparison.Ordinal);
        Assert.Contains("already exists", ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(store.JobDirectory(first.Id), "job.json")));
    }

    [Fact]
    public void Update_ReplacesRecordAndRemovesLeftoverTemporary()
    {
        using var temp = TempStateDirectory.Create();
        using var store = FileJobStore.Open(temp.Path);
        var record = TempStateDirectory.MinimalRecord();
        store.Create(record);
        var leftover = Path.Combine(store.JobDirectory(record.Id), "job.json.tmp");
        File.WriteAllText(leftover, "{\"version\": 1, \"id\": "); // a write torn by a crash
        var updated = TempStateDirectory.FullRecord(record.Id);

        store.Update(updated);

        AssertRecordsEqual(updated, Assert.Single(store.Load().Records));
        Assert.False(File.Exists(leftover));
    }

    [Fact]
    public void Update_LeftoverTemporaryLongerThanTheRecord_CutToTheRecord()
    {
        using var temp = TempStateDirectory.Create();
        using var store = FileJobStore.Open(temp.Path);
        var record = TempStateDirectory.MinimalRecord();
        store.Create(record);
        var json = Path.Combine(store.JobDirectory(record.Id), "job.json");
        var written = File.ReadAllBytes(json);
        // A crash during a longer write left this; the temporary file is reused without O_TRUNC.
        File.WriteAllText(json + ".tmp", new string('x', 64 * 1024));

        store.Update(record);

        Assert.Equal(written, File.ReadAllBytes(json));
        AssertRecordsEqual(record, Assert.Single(store.Load().Records));
    }

    [Fact]
    public void PrepareAhead_CreateTakesADirectoryMadeAheadWithTheFilesAStartCreates()
    {
        using var temp = TempStateDirectory.Create();
        using var store = FileJobStore.Open(temp.Path);
        var spares = Path.Combine(temp.Path, "spares");

        store.PrepareAhead();

        Assert.Equal(FileJobStore.SpareDirectories, store.SpareCount);
        var made = Directory.GetDirectories(spares);
        Assert.Equal(FileJobStore.SpareDirectories, made.Length);
        foreach (var spare in made)
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, new DirectoryInfo(spare).UnixFileMode);
            Assert.Equal(["job.json.tmp", "output.log", "shim.status.tmp"], Directory.GetFiles(spare).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            Assert.All(Directory.GetFiles(spare), f => Assert.Equal(0, new FileInfo(f).Length));
            Assert.All(Directory.GetFiles(spare), f => Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(f)));
        }

        var record = TempStateDirectory.FullRecord();
        store.Create(record);

        // One spare became the job's directory, whole: its record, and the empty files the supervisor writes.
        Assert.Equal(FileJobStore.SpareDirectories - 1, store.SpareCount);
        Assert.Single(made, spare => !Directory.Exists(spare));
        var directory = store.JobDirectory(record.Id);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, new DirectoryInfo(directory).UnixFileMode);
        Assert.Equal(["job.json", "output.log", "shim.status.tmp"], Directory.GetFiles(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(0, new FileInfo(store.LogPath(record.Id)).Length);
        var contents = store.Load();
        Assert.Empty(contents.Problems);
        AssertRecordsEqual(record, Assert.Single(contents.Records));

        // The next call makes up for the one taken.
        store.PrepareAhead();
        Assert.Equal(FileJobStore.SpareDirectories, Directory.GetDirectories(spares).Length);
    }

    [Fact]
    public void PrepareAhead_CreateOfAnExistingJob_RefusedAsWithoutSparesAndTheSpareRemoved()
    {
        using var temp = TempStateDirectory.Create();
        using var store = FileJobStore.Open(temp.Path);
        var first = TempStateDirectory.MinimalRecord();
        store.Create(first);
        var before = File.ReadAllBytes(Path.Combine(store.JobDirectory(first.Id), "job.json"));
        store.PrepareAhead();

        var ex = Assert.Throws<IOException>(() => store.Create(TempStateDirectory.FullRecord(first.Id)));

        Assert.Contains(store.JobDirectory(first.Id), ex.Message, StringComparison.Ordinal);
        Assert.Contains("already exists", ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(store.JobDirectory(first.Id), "job.json")));
        Assert.Equal(["job.json"], Directory.EnumerateFileSystemEntries(store.JobDirectory(first.Id)).Select(Path.GetFileName));
        Assert.Single(Directory.GetDirectories(Path.Combine(temp.Path, "spares")));
        Assert.Equal(1, store.SpareCount);
    }

    [Fact]
    public void Open_SparesLeftBehind_RemovedAndNeverListed()
    {
        using var temp = TempStateDirectory.Create();
        var spares = Path.Combine(temp.Path, "spares");
        using (var store = FileJobStore.Open(temp.Path))
        {
            store.PrepareAhead();
        }

        // What a server killed during a start leaves: a spare with the record it was about to become.
        var interrupted = Path.Combine(spares, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(interrupted);
        File.WriteAllText(Path.Combine(interrupted, "job.json"), "{}");
        File.WriteAllText(Path.Combine(interrupted, "output.log"), string.Empty);

        using var reopened = FileJobStore.Open(temp.Path);

        Assert.False(Directory.Exists(spares));
        var contents = reopened.Load();
        Assert.Empty(contents.Records);
        Assert.Empty(contents.Problems);
    }

    [Fact]
    public void Dispose_RemovesTheSpares()
    {
        using var temp = TempStateDirectory.Create();
        var store = FileJobStore.Open(temp.Path);
        store.PrepareAhead();
        Assert.True(Directory.Exists(Path.Combine(temp.Path, "spares")));

        store.Dispose();
        store.PrepareAhead();

        Assert.False(Directory.Exists(Path.Combine(temp.Path, "spares")));
        Assert.Equal(["format", "jobs", "lock"], Directory.EnumerateFileSystemEntries(temp.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Update_JobDirectoryMissing_ThrowsNamingPath()
    {
        using var temp = TempStateDirectory.Create();
        using var store = FileJobStore.Open(temp.Path);
        var record = TempStateDirectory.MinimalRecord();

        var ex = Assert.Throws<IOException>(() => store.Update(record));

        Assert.Contains(store.JobDirectory(record.Id), ex.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(store.JobDirectory(record.Id)));
    }

    [Fact]
    public void Load_TornWrites_OtherJobsIntactAndOnlyTheCorruptOneReported()
    {
        using var temp = TempStateDirectory.Create();
        using var store = FileJobStore.Open(temp.Path);
        var good = Enumerable.Range(0, 5).Select(i => TempStateDirectory.FullRecord() with { CreatedAt = DateTimeOffset.UnixEpoch.AddDays(i) }).ToList();
        good.ForEach(store.Create);
        var torn = TempStateDirectory.FullRecord();
        store.Create(torn);

        // good[0]: a crash during its next update left a truncated temporary file next to its record.
        var goodJson = File.ReadAllBytes(Path.Combine(store.JobDirectory(good[0].Id), "job.json"));
        File.WriteAllBytes(Path.Combine(store.JobDirectory(good[0].Id), "job.json.tmp"), goodJson[..(goodJson.Length / 2)]);

        // torn: its record itself is truncated, and its directory has a log (which must survive).
        var tornJson = Path.Combine(store.JobDirectory(torn.Id), "job.json");
        var tornBytes = File.ReadAllBytes(tornJson)[..100];
        File.WriteAllBytes(tornJson, tornBytes);
        File.WriteAllText(store.LogPath(torn.Id), "output of the torn job\n");

        var contents = store.Load();

        Assert.Equal(good.Count, contents.Records.Count);
        for (int i = 0; i < good.Count; i++)
        {
            AssertRecordsEqual(good[i], contents.Records[i]); // oldest first
        }

        var problem = Assert.Single(contents.Problems);
        Assert.Equal(store.JobDirectory(torn.Id), problem.Directory);
        Assert.Contains("not a valid record", problem.Reason, StringComparison.Ordinal);
        Assert.Equal(tornBytes, File.ReadAllBytes(tornJson));
        Assert.Equal("output of the torn job\n", File.ReadAllText(store.LogPath(torn.Id)));
        Assert.True(File.Exists(Path.Combine(store.JobDirectory(good[0].Id), "job.json.tmp")));
    }

    [Fact]
    public void Load_UnusableDirectories_EachReportedAndLeftAlone()
    {
        using var temp = TempStateDirectory.Create();
        using var store = FileJobStore.Open(temp.Path);
        var good = TempStateDirectory.MinimalRecord();
        store.Create(good);
        var jobs = Path.Combine(temp.Path, "jobs");

        var noRecord = store.JobDirectory(Guid.NewGuid());
        Directory.CreateDirectory(noRecord);
        File.WriteAllText(Path.Combine(noRecord, "output.log"), "x");

        var tooNew = TempStateDirectory.MinimalRecord();
        store.Create(tooNew);
        var tooNewJson = Path.Combine(store.JobDirectory(tooNew.Id), "job.json");
        File.WriteAllText(tooNewJson, File.ReadAllText(tooNewJson).Replace("\"version\": 1", "\"version\": 2", StringComparison.Ordinal).Replace("\"spec\"", "\"specV2\"", StringComparison.Ordinal));

        var wrongId = TempStateDirectory.MinimalRecord();
        store.Create(wrongId);
        var otherId = Guid.NewGuid();
        var wrongIdJson = Path.Combine(store.JobDirectory(wrongId.Id), "job.json");
        File.WriteAllText(wrongIdJson, File.ReadAllText(wrongIdJson).Replace(wrongId.Id.ToString("D"), otherId.ToString("D"), StringComparison.Ordinal));

        var missingField = TempStateDirectory.MinimalRecord();
        store.Create(missingField);
        var missingFieldJson = Path.Combine(store.JobDirectory(missingField.Id), "job.json");
        File.WriteAllText(missingFieldJson, File.ReadAllText(missingFieldJson).Replace("\"command\"", "\"cmd\"", StringComparison.Ordinal));

        var notAJob = Path.Combine(jobs, "not-a-job");
        Directory.CreateDirectory(notAJob);
        var before = temp.Snapshot();

        var contents = store.Load();

        AssertRecordsEqual(good, Assert.Single(contents.Records));
        var reasons = contents.Problems.ToDictionary(p => p.Directory, p => p.Reason);
        Assert.Equal(5, reasons.Count);
        Assert.StartsWith("no job.json", reasons[noRecord], StringComparison.Ordinal);
        Assert.Contains("version 2, newer than this server reads (1)", reasons[store.JobDirectory(tooNew.Id)], StringComparison.Ordinal);
        Assert.Contains($"record of job {otherId:N}", reasons[store.JobDirectory(wrongId.Id)], StringComparison.Ordinal);
        Assert.Contains("command", reasons[store.JobDirectory(missingField.Id)], StringComparison.Ordinal);
        Assert.Contains("not a job id", reasons[notAJob], StringComparison.Ordinal);
        Assert.Equal(before, temp.Snapshot());
    }

    [Fact]
    public void Delete_RemovesRecordLogAndStatus_MissingIsFine()
    {
        using var temp = TempStateDirectory.Create();
        using var store = FileJobStore.Open(temp.Path);
        var deleted = TempStateDirectory.MinimalRecord();
        var kept = TempStateDirectory.MinimalRecord();
        store.Create(deleted);
        store.Create(kept);
        File.WriteAllText(store.LogPath(deleted.Id), "log");
        File.WriteAllText(store.ShimStatusPath(deleted.Id), "version=1\n");

        store.Delete(deleted.Id);
        store.Delete(deleted.Id);
        store.Delete(Guid.NewGuid());

        Assert.False(Directory.Exists(store.JobDirectory(deleted.Id)));
        Assert.Equal([kept.Id.ToString("N")], Directory.EnumerateFileSystemEntries(Path.Combine(temp.Path, "jobs")).Select(Path.GetFileName));
        var contents = store.Load();
        Assert.Equal(kept.Id, Assert.Single(contents.Records).Id);
        Assert.Empty(contents.Problems);
    }

    [Fact]
    public void Open_DeleteInterruptedByCrash_FinishedAndNeverListed()
    {
        using var temp = TempStateDirectory.Create();
        var id = Guid.NewGuid();
        using (var store = FileJobStore.Open(temp.Path))
        {
            store.Create(TempStateDirectory.MinimalRecord(id));
            File.WriteAllText(store.LogPath(id), "log");
            var deleting = Path.Combine(temp.Path, "jobs", $".{id:N}-{Guid.NewGuid():N}.deleting");
            Directory.Move(store.JobDirectory(id), deleting); // what Delete does first; a crash struck before the rest
            File.Delete(Path.Combine(deleting, "job.json"));
            var contents = store.Load();
            Assert.Empty(contents.Records);
            Assert.Empty(contents.Problems);
        }

        using var reopened = FileJobStore.Open(temp.Path);

        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(temp.Path, "jobs")));
    }

    [Fact]
    public void Delete_LeftoverOfAnInterruptedDeleteOfTheSameId_DeletesAndOpenRemovesBoth()
    {
        using var temp = TempStateDirectory.Create();
        var id = Guid.NewGuid();
        var jobs = Path.Combine(temp.Path, "jobs");
        using (var store = FileJobStore.Open(temp.Path))
        {
            var leftover = Path.Combine(jobs, $".{id:N}-{Guid.NewGuid():N}.deleting");
            Directory.CreateDirectory(leftover);
            File.WriteAllText(Path.Combine(leftover, "output.log"), "old");
            store.Create(TempStateDirectory.MinimalRecord(id));

            store.Delete(id);

            Assert.False(Directory.Exists(store.JobDirectory(id)));
            Assert.Equal([Path.GetFileName(leftover)], Directory.EnumerateFileSystemEntries(jobs).Select(Path.GetFileName));
            Assert.Empty(store.Load().Problems);
        }

        using var reopened = FileJobStore.Open(temp.Path);

        Assert.Empty(Directory.EnumerateFileSystemEntries(jobs));
    }

    [Fact(Timeout = 60_000)]
    public async Task Update_ConcurrentWritersOfOneJob_RecordNeverTorn()
    {
        var ct = TestContext.Current.CancellationToken;
        using var temp = TempStateDirectory.Create();
        using var store = FileJobStore.Open(temp.Path);
        var id = Guid.NewGuid();
        store.Create(TempStateDirectory.MinimalRecord(id));

        // Records of different sizes, so that interleaved writes of one temporary file would show.
        using var start = new Barrier(4);
        var writers = Enumerable.Range(0, 4).Select(w => Task.Factory.StartNew(
            () =>
            {
                start.SignalAndWait(ct);
                for (int i = 0; i < 500; i++)
                {
                    store.Update(TempStateDirectory.FullRecord(id) with { RequestId = new string('x', (w * 500 + i) % 3000) });
                }
            },
            ct,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default)).ToList();
        var reads = 0;
        while (!writers.TrueForAll(w => w.IsCompleted))
        {
            var contents = store.Load();
            Assert.Empty(contents.Problems);
            Assert.Equal(id, Assert.Single(contents.Records).Id);
            reads++;
        }

        await Task.WhenAll(writers);
        Assert.Empty(store.Load().Problems);
        Assert.False(File.Exists(Path.Combine(store.JobDirectory(id), "job.json.tmp")));
        TestContext.Current.SendDiagnosticMessage($"{reads} loads during 2000 updates");
    }

    [Fact(Timeout = 60_000)]
    public void CreateAndUpdate_DiskFull_ClearIOExceptionAndEarlierRecordsIntact()
    {
        using var small = SmallFileSystem.TryMount(64 * 1024);
        Assert.SkipWhen(small is null, "needs root to mount a 64 KiB tmpfs to fill");
        var state = Path.Combine(small.Path, "state");
        using var store = FileJobStore.Open(state);
        var earlier = Enumerable.Range(0, 3).Select(i => TempStateDirectory.FullRecord() with { CreatedAt = DateTimeOffset.UnixEpoch.AddDays(i) }).ToList();
        earlier.ForEach(store.Create);
        // A directory made ahead is taken first; when the record cannot be written there, the start goes on as
        // without one, and the error names the job's own record.
        store.PrepareAhead();
        var filler = Path.Combine(small.Path, "filler");
        FillUp(filler);

        var newRecord = TempStateDirectory.FullRecord();
        var createError = Assert.Throws<IOException>(() => store.Create(newRecord));
        var updateError = Assert.Throws<IOException>(() => store.Update(earlier[1] with { RequestId = "changed" }));

        foreach (var (error, id) in new[] { (createError, newRecord.Id), (updateError, earlier[1].Id) })
        {
            Assert.Contains(Path.Combine(store.JobDirectory(id), "job.json"), error.Message, StringComparison.Ordinal);
            Assert.Contains("ENOSPC", error.Message, StringComparison.Ordinal);
            Assert.Contains("No space left on device", error.Message, StringComparison.Ordinal);
        }

        Assert.False(Directory.Exists(store.JobDirectory(newRecord.Id)));
        Assert.False(File.Exists(Path.Combine(store.JobDirectory(earlier[1].Id), "job.json.tmp")));
        var contents = store.Load();
        Assert.Empty(contents.Problems);
        Assert.Equal(earlier.Count, contents.Records.Count);
        for (int i = 0; i < earlier.Count; i++)
        {
            AssertRecordsEqual(earlier[i], contents.Records[i]);
        }

        // A server restarting on the full disk still starts and finds every record.
        store.Dispose();
        using (var restarted = FileJobStore.Open(state))
        {
            Assert.Equal(earlier.Select(r => r.Id), restarted.Load().Records.Select(r => r.Id));
        }

        // Space back: the same writes succeed.
        using var store2 = FileJobStore.Open(state);
        File.Delete(filler);
        store2.Create(newRecord);
        store2.Update(earlier[1] with { RequestId = "changed" });
        Assert.Equal(4, store2.Load().Records.Count);
        Assert.Equal("changed", store2.Load().Records[1].RequestId);
    }

    private static void FillUp(string path)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0);
        var block = new byte[4096];
        try
        {
            while (true)
            {
                stream.Write(block);
            }
        }
        catch (IOException ex) when (ex.HResult == 28 || ex.Message.Contains("No space left", StringComparison.Ordinal))
        {
        }
    }

    internal static void AssertRecordsEqual(JobRecord expected, JobRecord actual)
    {
        Assert.Equal(expected.Id, actual.Id);
        Assert.Equal(expected.RequestId, actual.RequestId);
        AssertSameInstant(expected.CreatedAt, actual.CreatedAt);
        AssertSameInstant(expected.StopRequestedAt, actual.StopRequestedAt);
        AssertSameInstant(expected.StopDeadline, actual.StopDeadline);

        var (e, a) = (expected.Spec, actual.Spec);
        Assert.Equal(e.Command, a.Command);
        Assert.Equal(e.Arguments, a.Arguments);
        Assert.Equal(e.Environment.OrderBy(p => p.Key, StringComparer.Ordinal), a.Environment.OrderBy(p => p.Key, StringComparer.Ordinal));
        Assert.Equal(e.WorkingDirectory, a.WorkingDirectory);
        Assert.Equal(e.Isolation, a.Isolation);
        Assert.Equal(e.Owner, a.Owner);
        Assert.Equal(e.Limits.CpuCores, a.Limits.CpuCores);
        Assert.Equal(e.Limits.MemoryBytes, a.Limits.MemoryBytes);
        Assert.Equal(e.Limits.MaxProcesses, a.Limits.MaxProcesses);
        Assert.Equal(e.Limits.Io, a.Limits.Io); // IoLimit is a record of scalars: value equality

        if (expected.Final is null)
        {
            Assert.Null(actual.Final);
            return;
        }

        Assert.NotNull(actual.Final);
        Assert.Equal(expected.Final with { StartedAt = default, EndedAt = null }, actual.Final with { StartedAt = default, EndedAt = null });
        AssertSameInstant(expected.Final.StartedAt, actual.Final.StartedAt);
        AssertSameInstant(expected.Final.EndedAt, actual.Final.EndedAt);
    }

    // The instant and the offset: DateTimeOffset.Equals compares the instant only.
    private static void AssertSameInstant(DateTimeOffset? expected, DateTimeOffset? actual)
    {
        Assert.Equal(expected, actual);
        Assert.Equal(expected?.Offset, actual?.Offset);
        Assert.Equal(expected?.Ticks, actual?.Ticks);
    }
}
