using System.Globalization;
using JobWorker.Core.Jobs;
using JobWorker.Core.State;

namespace JobWorker.Server.Tests.Infrastructure;

/// <summary>
/// Writes records of ended jobs into a state directory through the real store, as a server that ran them would have
/// left them: a server started on the directory loads them like after a restart. Thousands of jobs without running
/// thousands of processes.
/// </summary>
internal static class EndedJobRecords
{
    /// <summary>Writes <paramref name="count"/> ended jobs, owned in turn by <paramref name="owners"/>, created one
    /// millisecond apart from <paramref name="firstCreated"/>; returns their ids in creation order.</summary>
    public static List<Guid> Write(string stateDirectory, int count, IReadOnlyList<string> owners, DateTimeOffset firstCreated)
    {
        var ids = new List<Guid>(count);
        using var store = FileJobStore.Open(stateDirectory);
        for (var i = 0; i < count; i++)
        {
            var created = firstCreated.AddMilliseconds(i);
            var record = new JobRecord
            {
                Id = Guid.NewGuid(),
                Spec = new JobSpec("/bin/true", ["job", i.ToString(CultureInfo.InvariantCulture)]) { Owner = owners[i % owners.Count] },
                CreatedAt = created,
                Final = new JobStatus
                {
                    State = JobState.Exited,
                    Pid = 10_000 + i,
                    ExitCode = 0,
                    StartedAt = created.AddMilliseconds(0.5),
                    EndedAt = created.AddSeconds(1),
                },
            };
            store.Create(record);
            ids.Add(record.Id);
        }

        return ids;
    }
}
