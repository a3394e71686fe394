using System.Runtime.InteropServices;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Processes;

// Serial: a spawn running concurrently in another test leaves the process non-dumpable for a few microseconds.
[Collection("ResourceCounting")]
public sealed partial class DumpableTests
{
    private const int PR_GET_DUMPABLE = 3;

    [LibraryImport("libc", EntryPoint = "prctl")]
    private static partial int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [Fact(Timeout = 30_000)]
    public async Task Start_JobWithOtherUser_ServerStaysDumpable()
    {
        // The CLONE_VM child's setuid resets the shared mm's dumpable flag; the library must restore it.
        Assert.SkipUnless(Prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1, "this test process is not dumpable to begin with");
        await using var t = TestRunner.Create();

        var job = t.Start("exit", "0");
        await job.Completion.WaitAsync(TestContext.Current.CancellationToken);

        Assert.Equal(1, Prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
    }
}
