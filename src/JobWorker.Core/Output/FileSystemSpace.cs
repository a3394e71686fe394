using System.Runtime.InteropServices;

namespace JobWorker.Core.Output;

/// <summary>Free and total space of the file system holding a path (one <c>statvfs</c>, no allocation but the path's UTF-8).</summary>
/// <param name="AvailableBytes">Bytes an unprivileged writer may still use (<c>f_bavail × f_frsize</c>).</param>
/// <param name="TotalBytes">The file system's size (<c>f_blocks × f_frsize</c>).</param>
public readonly record struct FileSystemSpace(long AvailableBytes, long TotalBytes)
{
    /// <summary>Reads the space of the file system that holds <paramref name="path"/>.</summary>
    /// <exception cref="IOException">statvfs failed (the path does not exist, …); the message names the path.</exception>
    public static FileSystemSpace Of(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Interop.Sys.StatVfs(path, out var buffer) != 0)
        {
            throw Interop.CreateIOException(Marshal.GetLastPInvokeError(), "statvfs", path);
        }

        var fragment = buffer.FragmentSize == 0 ? buffer.BlockSize : buffer.FragmentSize;
        return new FileSystemSpace(
            (long)Math.Min(buffer.BlocksAvailable * fragment, long.MaxValue),
            (long)Math.Min(buffer.Blocks * fragment, long.MaxValue));
    }
}
