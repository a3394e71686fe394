using System.Diagnostics;

namespace JobWorker.Core.Tests.State;

/// <summary>util-linux flock(1) as the other process that holds, or tries to take, a lock.</summary>
internal static class LockingProcess
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // flock(1) holding the lock on PATH while its child sleeps. -o: the child does not inherit the lock, so it is
    // flock's own (listed under its pid) and goes with it. Returns once the lock is taken.
    public static async Task<Process> StartHolderAsync(string path)
    {
        var start = new ProcessStartInfo("/usr/bin/flock") { RedirectStandardOutput = true };
        foreach (var argument in new[] { "-o", path, "sh", "-c", "echo locked; exec sleep 60" })
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start)!;
        try
        {
            Assert.Equal("locked", await process.StandardOutput.ReadLineAsync(Ct));
            return process;
        }
        catch
        {
            await StopAsync(process);
            throw;
        }
    }

    public static async Task StopAsync(Process holder)
    {
        holder.Kill(entireProcessTree: true);
        await holder.WaitForExitAsync(Ct);
        holder.Dispose();
    }

    public static async Task<int> RunAsync(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        await process.WaitForExitAsync(Ct);
        return process.ExitCode;
    }
}
