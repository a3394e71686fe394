using System.Diagnostics;

namespace JobWorker.Server.Tests.Infrastructure;

/// <summary>
/// A small tmpfs mounted on a fresh directory under the temp directory: a file system that fills up. Unmounted (lazily
/// if something still holds it) and removed on dispose, also when the test failed.
/// </summary>
internal sealed class TmpfsMount : IAsyncDisposable
{
    private TmpfsMount(string path) => Path = path;

    public string Path { get; }

    public static async Task<TmpfsMount> CreateAsync(long sizeBytes)
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "jobworker-tmpfs-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path);
        var (code, output) = await RunAsync("mount", "-t", "tmpfs", "-o", $"size={sizeBytes},mode=0700", "tmpfs", path);
        if (code != 0)
        {
            Directory.Delete(path);
            throw new InvalidOperationException($"mount -t tmpfs on {path} failed ({code}): {output}");
        }

        return new TmpfsMount(path);
    }

    public async ValueTask DisposeAsync()
    {
        // A process forked elsewhere in the test run holds copies of this process's fds until it execs (umount says
        // EBUSY meanwhile): retry for a while. Still busy after that is a leak: detach the mount anyway, and fail.
        for (var attempt = 0; (await RunAsync("umount", Path)).Code != 0; attempt++)
        {
            if (attempt == 40)
            {
                await RunAsync("umount", "--lazy", Path);
                Directory.Delete(Path, recursive: true);
                throw new IOException($"the tmpfs at {Path} stayed busy for 2 s after the test (an fd into it leaked?); detached it lazily");
            }

            await Task.Delay(50, CancellationToken.None);
        }

        Directory.Delete(Path);
    }

    private static async Task<(int Code, string Output)> RunAsync(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = await process.StandardError.ReadToEndAsync(CancellationToken.None) + await process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        await process.WaitForExitAsync(CancellationToken.None);
        return (process.ExitCode, output.Trim());
    }
}
