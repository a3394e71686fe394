namespace JobWorker.Core.Jobs;

/// <summary>
/// A place in the runner's listing order: by creation time, then id. A position names no job, so listing after it
/// still works once the job it came from was removed.
/// </summary>
/// <param name="CreatedAtUtcTicks">The creation time's UTC ticks (<see cref="Job.CreatedAt"/>).</param>
/// <param name="Id">The job id, which breaks ties between jobs created at the same tick.</param>
public readonly record struct JobListPosition(long CreatedAtUtcTicks, Guid Id) : IComparable<JobListPosition>
{
    /// <summary>The position of <paramref name="job"/>.</summary>
    public static JobListPosition Of(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        return new(job.CreatedAt.UtcTicks, job.Id);
    }

    public int CompareTo(JobListPosition other)
    {
        var byTime = CreatedAtUtcTicks.CompareTo(other.CreatedAtUtcTicks);
        return byTime != 0 ? byTime : Id.CompareTo(other.Id);
    }

    public static bool operator <(JobListPosition left, JobListPosition right) => left.CompareTo(right) < 0;

    public static bool operator >(JobListPosition left, JobListPosition right) => left.CompareTo(right) > 0;

    public static bool operator <=(JobListPosition left, JobListPosition right) => left.CompareTo(right) <= 0;

    public static bool operator >=(JobListPosition left, JobListPosition right) => left.CompareTo(right) >= 0;
}
