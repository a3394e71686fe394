namespace JobWorker.Core.State;

/// <summary>What <see cref="IJobStore.Load"/> found.</summary>
/// <param name="Records">Every readable job record, oldest first.</param>
/// <param name="Problems">Job directories without a readable record; they are left in place untouched.</param>
internal sealed record StoreContents(IReadOnlyList<JobRecord> Records, IReadOnlyList<StoreProblem> Problems);

/// <summary>A job directory whose record could not be used.</summary>
/// <param name="Directory">The directory, left as it is.</param>
/// <param name="Reason">Why, for the log ("job.json is not valid JSON: ...").</param>
internal sealed record StoreProblem(string Directory, string Reason);
