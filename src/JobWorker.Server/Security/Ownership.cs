namespace JobWorker.Server.Security;

/// <summary>How the caller relates to the job an operation targets.</summary>
public enum Ownership
{
    /// <summary>The operation targets no existing job (start) or each listed job is checked separately.</summary>
    NoJob,

    /// <summary>The caller owns the job.</summary>
    Own,

    /// <summary>Someone else owns the job.</summary>
    Other,
}
