namespace JobWorker.Core.Jobs;

/// <summary>
/// A limit was requested whose cgroup v2 controller is not available to the runner. The job was not
/// started (limits are never silently dropped). The runner stays usable.
/// </summary>
public sealed class CgroupControllerUnavailableException : JobWorkerException
{
    public CgroupControllerUnavailableException(string controller, string message)
        : base(message)
    {
        Controller = controller;
    }

    /// <summary>The missing controller: <c>cpu</c>, <c>memory</c>, <c>io</c> or <c>pids</c>.</summary>
    public string Controller { get; }
}
