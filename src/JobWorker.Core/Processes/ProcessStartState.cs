namespace JobWorker.Core.Processes;

/// <summary>
/// What the C library sets in a job before its exec (<c>JW_SPAWN_START_STATE</c>): <see cref="Jobs.JobStartState"/>
/// with the hard limit resolved.
/// </summary>
internal sealed record ProcessStartState(ulong OpenFilesSoft, ulong OpenFilesHard, uint Umask, int OomScoreAdjust, int Nice);
