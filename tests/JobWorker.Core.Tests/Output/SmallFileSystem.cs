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
        Run("umount", Path);
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
