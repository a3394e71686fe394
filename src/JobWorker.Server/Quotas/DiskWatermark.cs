using System.Globalization;
using JobWorker.Core.Output;
using JobWorker.Server.Configuration;
using JobWorker.Server.Errors;

namespace JobWorker.Server.Quotas;

/// <summary>
/// Refuses new jobs while the file system of the state directory (where every job's log is written) is below its
/// free-space watermark. One <c>statvfs</c> per start; running jobs are never touched, and starts are accepted again
/// as soon as space is back.
/// </summary>
public sealed class DiskWatermark
{
    private readonly DiskOptions _options;
    private readonly string _stateDirectory;
    private readonly Lazy<(string MountPoint, string Type)> _fileSystem;

    public DiskWatermark(DiskOptions options, ServerOptions server)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(server);
        _options = options;
        _stateDirectory = server.StateDirectory;
        _fileSystem = new(() => FindFileSystem(_stateDirectory));
    }

    /// <summary>Whether the watermark is checked at all (a threshold is set).</summary>
    public bool Enabled => _options.MinFreeBytes > 0 || _options.MinFreePercent > 0;

    /// <summary>Throws when the state directory's file system is below the watermark.</summary>
    /// <exception cref="QuotaExceededException">Below the watermark; the message names the file system, the free
    /// space and the watermark.</exception>
    public void Check()
    {
        if (!Enabled)
        {
            return;
        }

        long free;
        long total;
        try
        {
            (free, total) = FileSystemSpace.Of(_stateDirectory);
        }
        catch (IOException)
        {
            return; // the start itself reports a state directory it cannot use
        }

        var percent = total > 0 ? 100.0 * free / total : 100.0;
        var belowBytes = _options.MinFreeBytes > 0 && free < _options.MinFreeBytes;
        var belowPercent = _options.MinFreePercent > 0 && percent < _options.MinFreePercent;
        if (!belowBytes && !belowPercent)
        {
            return;
        }

        var (mountPoint, type) = _fileSystem.Value;
        var watermark = belowBytes
            ? $"{QuotaLedger.Bytes(_options.MinFreeBytes)} ({DiskOptions.Section}:MinFreeBytes)"
            : string.Create(CultureInfo.InvariantCulture, $"{_options.MinFreePercent:0.##} % ({DiskOptions.Section}:MinFreePercent)");
        throw new QuotaExceededException(string.Create(
            CultureInfo.InvariantCulture,
            $"the log file system is almost full: {mountPoint} ({type}, holding the state directory {_stateDirectory}) has {QuotaLedger.Bytes(free)} free ({percent:0.##} % of {QuotaLedger.Bytes(total)}), below the watermark of {watermark}; new jobs are refused until space is freed (remove ended jobs: worker rm <id>)"));
    }

    /// <summary>The mount point and file-system type of <paramref name="path"/>: the longest mount point that contains it.</summary>
    private static (string MountPoint, string Type) FindFileSystem(string path)
    {
        var full = Path.GetFullPath(path);
        try
        {
            full = new DirectoryInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
        }
        catch (IOException)
        {
        }

        var best = ("/", "unknown");
        try
        {
            foreach (var line in File.ReadLines("/proc/self/mountinfo"))
            {
                // "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw": field 5 is the mount point
                // (octal escapes for spaces), the type follows " - ".
                var fields = line.Split(' ');
                var separator = line.IndexOf(" - ", StringComparison.Ordinal);
                if (fields.Length < 5 || separator < 0)
                {
                    continue;
                }

                var mountPoint = fields[4].Replace("\\040", " ", StringComparison.Ordinal);
                var contains = mountPoint == "/" || full == mountPoint || full.StartsWith(mountPoint + "/", StringComparison.Ordinal);
                if (contains && mountPoint.Length >= best.Item1.Length)
                {
                    best = (mountPoint, line[(separator + 3)..].Split(' ')[0]);
                }
            }
        }
        catch (IOException)
        {
        }

        return best;
    }
}
