using System.Runtime.InteropServices;
using JobWorker.Core.Jobs;
using JobWorker.Core.State;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

/// <summary>
/// Job directories made ahead of their starts (<c>&lt;state&gt;/spares</c>, see <see cref="FileJobStore.PrepareAhead"/>):
/// a real runner takes them, its real supervisor writes the log made there, and refuses one that is not empty.
/// </summary>
public sealed partial class DirectoriesMadeAheadTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 30_000)]
    public async Task Start_TakesADirectoryMadeAhead_TheSupervisorWritesItsLogAndTheSpareIsReplaced()
    {
        await using var t = TestRunner.Create();
        var spares = await WaitForSparesAsync(t);
        foreach (var spare in spares)
        {
            File.WriteAllText(Path.Combine(spare, "made-ahead"), string.Empty); // tells a spare from a directory made by the start
        }

        var job = t.Start("echo", "from a spare", "exit", "0");
        var status = await job.Completion.WaitAsync(Ct);

        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal("from a spare\n", t.Output(job));
        Assert.True(File.Exists(Path.Combine(t.JobDirectory(job.Id), "made-ahead")), "the job's directory was not one made ahead");
        Assert.Single(spares, spare => !Directory.Exists(spare));

        // Made up for after the start, off its path.
        var after = await WaitForSparesAsync(t);
        Assert.Equal(FileJobStore.SpareDirectories, after.Count);
    }

    [Theory(Timeout = 30_000)]
    [InlineData("not empty", "EEXIST")]
    [InlineData("a second link", "EEXIST")]
    [InlineData("readable by others", "EEXIST")]
    [InlineData("a symlink", "ELOOP")]
    public async Task Start_LogMadeAheadTamperedWith_SupervisorRefusesItAndNothingIsLeftBehind(string tampering, string errno)
    {
        await using var t = TestRunner.Create();
        var elsewhere = Path.Combine(t.StateDirectory, "elsewhere");
        foreach (var spare in await WaitForSparesAsync(t))
        {
            var log = Path.Combine(spare, "output.log");
            switch (tampering)
            {
                case "not empty":
                    File.WriteAllText(log, "not this job's");
                    break;
                case "a second link":
                    Assert.Equal(0, Link(log, Path.Combine(spare, "another-name")));
                    break;
                case "readable by others":
                    File.SetUnixFileMode(log, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
                    break;
                default:
                    File.Delete(log);
                    File.CreateSymbolicLink(log, elsewhere);
                    break;
            }
        }

        var ex = Assert.Throws<JobStartException>(() => t.Start("echo", "never", "exit", "0"));

        Assert.Equal(JobStartFailure.StateError, ex.Reason);
        Assert.Contains("(ShimLog)", ex.Message, StringComparison.Ordinal);
        Assert.Contains(errno, ex.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(elsewhere), "the supervisor wrote through a planted link");
        Assert.Empty(t.JobDirectories());
        Assert.Empty(t.Runner.Jobs);
    }

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string existing, string name);

    /// <summary>The spares once the runner has made them all, each with its empty files.</summary>
    private static async Task<List<string>> WaitForSparesAsync(TestRunner t)
    {
        var root = Path.Combine(t.StateDirectory, "spares");
        List<string> Complete() => Directory.Exists(root)
            ? [.. Directory.GetDirectories(root).Where(d => Directory.GetFiles(d).Length >= 3)]
            : [];
        for (var i = 0; i < 200 && Complete().Count < FileJobStore.SpareDirectories; i++)
        {
            await Task.Delay(25, Ct);
        }

        var spares = Complete();
        Assert.True(spares.Count == FileJobStore.SpareDirectories, $"{spares.Count} spare directories after 5 s, not {FileJobStore.SpareDirectories}");
        return spares;
    }
}
