using System.Diagnostics;

namespace JobWorker.Core.Tests.Output;

/// <summary>A tiny tmpfs mounted for one test, to make a disk full for real. Unmounted and removed on dispose.</summary>
internal sealed class SmallFileSystem : IDisposable
{
    private SmallFileSystem(string path) => Path = path;

    public string Path { get; }

    /// <summary>Mounts a tmpfs of <paramref name="bytes"/>, or returns null when this process may not mount.</summary>
    public static SmallFileSystem? TryMount(long bytes)
    {
        var directory = Directory.CreateTempSubdirectory("jobworker-full-disk-");
        if (Run("mount", "-t", "tmpfs", "-o", $"size={bytes},mode=0700", "jobworker-test", directory.FullName) == 0)
        {
            return new SmallFileSystem(directory.FullName);
        }

        directory.Delete();
        return null;
    }

    public void Dispose()
    {
        // A process that another test forks at the same moment holds copies of this process's fds (the log's
        // among them) until it execs, and umount fails with EBUSY meanwhile: retry for a while. Still busy
        // after that is a real leak: detach the mount anyway, so nothing stays mounted, and fail.
        for (var attempt = 0; Run("umount", Path) != 0; attempt++)
        {
            if (attempt == 40)
            {
                Run("umount", "--lazy", Path);
                Directory.Delete(Path, recursive: true);
                throw new IOException($"the tmpfs at {Path} stayed busy for 2 s after the test (an fd into it leaked?); detached it lazily");
            }

            Thread.Sleep(50);
        }

        Directory.Delete(Path, recursive: true);
    }

    private static int Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            using var process = Process.Start(start)!;
            process.WaitForExit();
            return process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1;
        }
    }
}
