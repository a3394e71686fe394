namespace JobWorker.Server.Configuration;

/// <summary>
/// How long ended jobs are kept, bound from <c>JobWorker:Retention</c>. An ended job, with its log, is removed once
/// <see cref="EndedJobs"/> has passed since it ended, and (with <see cref="RemoveOldestOverQuota"/>) when a start
/// needs its place under its owner's quota; running jobs are never removed. See docs/operations.md.
/// </summary>
public sealed class RetentionOptions
{
    public const string Section = ServerOptions.Section + ":Retention";

    /// <summary>How long an ended job is kept after it ended; empty keeps ended jobs until someone removes them.</summary>
    public TimeSpan? EndedJobs { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// What a start does when its user keeps as many ended jobs, or as many log bytes in them, as their quota allows
    /// (<c>JobWorker:Quotas</c>): false refuses it (ResourceExhausted, naming the quota); true removes that user's
    /// oldest ended jobs, with their logs, until the start fits, as a ring buffer keeps the newest. Running jobs are
    /// never removed.
    /// </summary>
    public bool RemoveOldestOverQuota { get; set; }

    /// <summary>How often the server looks for expired jobs (and once at start-up); a job is removed at most this
    /// long after it expired.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Every problem with these settings, each naming the setting; empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (EndedJobs is { } ended && ended <= TimeSpan.Zero)
        {
            errors.Add($"{Section}:EndedJobs must be positive (is {ended}); leave it empty to keep ended jobs until they are removed");
        }

        if (CheckInterval < TimeSpan.FromMilliseconds(10) || CheckInterval > TimeSpan.FromDays(1))
        {
            errors.Add($"{Section}:CheckInterval must be between 00:00:00.010 and 1 day (is {CheckInterval})");
        }

        return errors;
    }
}
