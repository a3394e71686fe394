using JobWorker.Core.Processes;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Tests.Processes;

public sealed class EventLoopTests
{
    private static unsafe (SafeFileHandle Read, SafeFileHandle Write) Pipe()
    {
        var fds = stackalloc int[2];
        Assert.Equal(0, Interop.Spawn.Pipe(fds, 0));
        return (new SafeFileHandle(fds[0], true), new SafeFileHandle(fds[1], true));
    }

    private static unsafe void WriteByte(SafeFileHandle fd)
    {
        byte b = 1;
        Assert.Equal(1, Interop.Sys.Write(fd, &b, 1));
    }

    private static unsafe void DrainAll(SafeFileHandle fd)
    {
        var buffer = stackalloc byte[256];
        while (Interop.Sys.Read(fd, buffer, 256) > 0)
        {
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Add_FdAlreadyReadable_HandlerGetsItsTokenAndCanRearmAtOnce()
    {
        // Readiness can be dispatched before Add returns; a handler that re-armed with a token read from a
        // field assigned after Add would silently stop watching (the job's pipe would fill and the job hang).
        using var loop = new EventLoop(ex => Assert.Fail(ex.ToString()));
        for (var i = 0; i < 200; i++)
        {
            var (read, write) = Pipe();
            using (read)
            using (write)
            {
                WriteByte(write);
                var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var second = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var calls = 0;
                ulong? seen = null;

                var token = loop.Add(read, t =>
                {
                    seen = t;
                    DrainAll(read);
                    if (Interlocked.Increment(ref calls) == 1)
                    {
                        loop.Rearm(t);
                        first.TrySetResult();
                    }
                    else
                    {
                        second.TrySetResult();
                    }
                });
                await first.Task.WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
                WriteByte(write);
                await second.Task.WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);

                loop.Remove(token);
                Assert.Equal(token, seen);
            }
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Rearm_DataArrivesBetweenDrainAndRearm_StillDelivered()
    {
        using var loop = new EventLoop(ex => Assert.Fail(ex.ToString()));
        var (read, write) = Pipe();
        using (read)
        using (write)
        {
            var count = 0;
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            loop.Add(read, t =>
            {
                DrainAll(read);
                if (Interlocked.Increment(ref count) < 50)
                {
                    WriteByte(write); // arrives after the drain, before the re-arm
                    loop.Rearm(t);
                }
                else
                {
                    done.TrySetResult();
                }
            });

            WriteByte(write);
            await done.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
            Assert.Equal(50, count);
        }
    }
}
