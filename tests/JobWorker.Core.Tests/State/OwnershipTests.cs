using JobWorker.Core.Jobs;
using JobWorker.Core.State;

namespace JobWorker.Core.Tests.State;

public sealed class OwnershipTests
{
    private static string OwnExecutable => new FileInfo("/proc/self/exe").LinkTarget!;

    [Fact]
    public void Open_SameDirectoryTwice_SecondRefusedNamingThisProcess()
    {
        using var temp = TempStateDirectory.Create();
        using (var first = FileJobStore.Open(temp.Path))
        {
            var ex = Assert.Throws<JobWorkerException>(() => FileJobStore.Open(temp.Path));

            Assert.Equal(
                $"State directory {temp.Path} is in use by another JobWorker server (pid {Environment.ProcessId}, {OwnExecutable}). " +
                "Stop it, or give this server its own state directory (StateDirectory).",
                ex.Message);
            Assert.Equal($"{Environment.ProcessId}\n", TempStateDirectory.ReadTextWithoutLocking(Path.Combine(temp.Path, "lock")));
        }

        using var again = FileJobStore.Open(temp.Path);
    }

    [Fact(Timeout = 30_000)]
    public async Task Open_LockedByAnotherProcess_RefusedNamingIt_AndTheOtherProcessSeesOurs()
    {
        using var temp = TempStateDirectory.Create();
        var lockFile = Path.Combine(temp.Path, "lock");
        using (FileJobStore.Open(temp.Path))
        {
            // Across processes: util-linux flock(1) cannot take it while we hold it.
            Assert.Equal(1, await LockingProcess.RunAsync("flock", "-n", lockFile, "true"));
        }

        // Released. A process that another test forks at this moment shares the lock's open file until its exec
        // closes it (close-on-exec), so a refusal may last a moment, never longer.
        var free = 1;
        for (var attempt = 0; attempt < 20 && free != 0; attempt++)
        {
            if (attempt > 0)
            {
                await Task.Delay(100, TestContext.Current.CancellationToken);
            }

            free = await LockingProcess.RunAsync("flock", "-n", lockFile, "true");
        }

        Assert.Equal(0, free);
        var holder = await LockingProcess.StartHolderAsync(lockFile);
        try
        {
            var ex = Assert.Throws<JobWorkerException>(() => FileJobStore.Open(temp.Path));

            Assert.Contains($"(pid {holder.Id}, /usr/bin/flock)", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            await LockingProcess.StopAsync(holder);
        }

        using var ours = FileJobStore.Open(temp.Path);
    }

    [Fact]
    public void Open_RelativePath_ArgumentException()
    {
        var ex = Assert.Throws<ArgumentException>(() => FileJobStore.Open("var/lib/jobworker"));

        Assert.Contains("absolute", ex.Message, StringComparison.Ordinal);
    }
}
