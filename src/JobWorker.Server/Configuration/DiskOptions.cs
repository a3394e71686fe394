namespace JobWorker.Server.Configuration;

/// <summary>
/// The free-space watermark of the file system that holds the state directory (the job logs), bound from
/// <c>JobWorker:Disk</c>. Below either threshold new jobs are refused; running jobs are not touched. 0 turns a
/// threshold off.
/// </summary>
public sealed class DiskOptions
{
    public const string Section = ServerOptions.Section + ":Disk";

    /// <summary>Refuse new jobs when less than this share of the file system is free (percent, 0–100).</summary>
    public double MinFreePercent { get; set; } = 5;

    /// <summary>Refuse new jobs when fewer than this many bytes are free.</summary>
    public long MinFreeBytes { get; set; } = 512L << 20;

    /// <summary>Every problem with these settings, each naming the setting; empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (double.IsNaN(MinFreePercent) || MinFreePercent is < 0 or >= 100)
        {
            errors.Add($"{Section}:MinFreePercent must be at least 0 (off) and below 100 (is {MinFreePercent})");
        }

        if (MinFreeBytes < 0)
        {
            errors.Add($"{Section}:MinFreeBytes must be 0 (off) or positive (is {MinFreeBytes})");
        }

        return errors;
    }
}
