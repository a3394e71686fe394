using System.Text.RegularExpressions;
using JobWorker.Core.Jobs;

namespace JobWorker.Core.Cgroups;

/// <summary>Resolves a block device path or MAJ:MIN to the whole disk's MAJ:MIN, as io.max requires.</summary>
internal static partial class BlockDevices
{
    [GeneratedRegex(@"^\d+:\d+$")]
    private static partial Regex MajorMinor();

    /// <exception cref="ArgumentException">Not a block device; the message names <paramref name="field"/>.</exception>
    public static string Resolve(string device, string field, string sysfs = "/sys")
    {
        if (string.IsNullOrWhiteSpace(device))
        {
            throw JobSpecValidator.Invalid($"{field} is empty; give a block device path such as /dev/sda or MAJ:MIN such as 8:0.");
        }

        string devnum;
        if (MajorMinor().IsMatch(device))
        {
            devnum = device;
        }
        else
        {
            if (!device.StartsWith('/'))
            {
                throw JobSpecValidator.Invalid($"{field} '{device}' must be an absolute device path (/dev/sda) or MAJ:MIN (8:0).");
            }

            string name;
            try
            {
                var target = new FileInfo(device).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? device;
                name = Path.GetFileName(target);
            }
            catch (IOException ex)
            {
                throw JobSpecValidator.Invalid($"{field} '{device}' cannot be resolved: {ex.Message}", ex);
            }

            var dev = Path.Combine(sysfs, "class/block", name, "dev");
            if (!File.Exists(device) || !File.Exists(dev))
            {
                throw JobSpecValidator.Invalid($"{field} '{device}' is not a block device on this host.");
            }

            devnum = File.ReadAllText(dev).Trim();
        }

        var sysDev = Path.Combine(sysfs, "dev/block", devnum);
        if (!Directory.Exists(sysDev))
        {
            throw JobSpecValidator.Invalid($"{field} '{device}' ({devnum}) is not a block device on this host.");
        }

        // io.max applies to whole disks: a partition (it has a "partition" attribute) maps to its parent disk,
        // which is the parent directory of the partition's sysfs node (/sys/devices/.../sda/sda1).
        if (File.Exists(Path.Combine(sysDev, "partition")))
        {
            var real = new DirectoryInfo(sysDev).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? sysDev;
            var parentDev = Path.Combine(Path.GetDirectoryName(real)!, "dev");
            devnum = File.ReadAllText(parentDev).Trim();
        }

        return devnum;
    }
}
