namespace JobWorker.Core.Jobs;

/// <summary>
/// The runner's jobs sorted by <see cref="JobListPosition"/>, so that a page of a listing costs O(log n + page)
/// rather than a sort of every job on every call.
/// </summary>
internal sealed class JobOrder
{
    private readonly SortedSet<Entry> _entries = new(EntryComparer.Instance);
    private readonly Lock _lock = new();

    public void Add(Job job)
    {
        lock (_lock)
        {
            _entries.Add(new Entry(JobListPosition.Of(job), job));
        }
    }

    public void Remove(Job job)
    {
        lock (_lock)
        {
            _entries.Remove(new Entry(JobListPosition.Of(job), null));
        }
    }

    /// <summary>Up to <paramref name="count"/> jobs after <paramref name="after"/> (or from the first) that match.</summary>
    public List<Job> After(JobListPosition? after, int count, Func<Job, bool>? filter)
    {
        var result = new List<Job>(Math.Min(count, 1024));
        lock (_lock)
        {
            if (_entries.Count == 0 || count <= 0)
            {
                return result;
            }

            IEnumerable<Entry> range = after is { } position
                ? position < _entries.Max.Position ? _entries.GetViewBetween(new Entry(position, null), _entries.Max) : []
                : _entries;
            foreach (var entry in range)
            {
                if (after is { } start && entry.Position <= start)
                {
                    continue;
                }

                if (filter is null || filter(entry.Job!))
                {
                    result.Add(entry.Job!);
                    if (result.Count == count)
                    {
                        break;
                    }
                }
            }
        }

        return result;
    }

    private readonly record struct Entry(JobListPosition Position, Job? Job);

    private sealed class EntryComparer : IComparer<Entry>
    {
        public static readonly EntryComparer Instance = new();

        public int Compare(Entry x, Entry y) => x.Position.CompareTo(y.Position);
    }
}
