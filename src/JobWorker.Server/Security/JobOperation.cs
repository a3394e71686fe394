namespace JobWorker.Server.Security;

/// <summary>What a caller wants to do; one value per RPC.</summary>
public enum JobOperation
{
    Start,
    List,
    Get,
    Stop,
    StreamOutput,
    Remove,
}
