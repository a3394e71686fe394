using JobWorker.Core.Jobs;

namespace JobWorker.Core.State;

/// <summary>A state file (<c>format</c>, <c>job.json</c>, <c>shim.status</c>) that this server cannot read: corrupt, or too new.</summary>
internal sealed class StateFormatException : JobWorkerException
{
    public StateFormatException(string path, string message)
        : base(message)
    {
        Path = path;
    }

    public StateFormatException(string path, string message, Exception? innerException)
        : base(message, innerException)
    {
        Path = path;
    }

    /// <summary>The file.</summary>
    public string Path { get; }
}
