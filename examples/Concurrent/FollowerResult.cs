namespace JobWorker.Examples.Concurrent;

/// <summary>What one follower received. Written by its own task only; read after it ends.</summary>
internal sealed class FollowerResult
{
    public long Bytes { get; set; }

    public long Messages { get; set; }

    public List<double> LatenciesMs { get; } = [];

    public string? Error { get; set; }
}
