namespace JobWorker.Server.Diagnostics;

/// <summary>The server's log messages: structured (user, job id, …) with stable event ids.</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "{User} started job {JobId}: {Command} (pid {Pid})")]
    public static partial void JobStarted(ILogger logger, string user, Guid jobId, string command, int pid);

    [LoggerMessage(2, LogLevel.Information, "{User} stopped job {JobId}: {State}")]
    public static partial void JobStopped(ILogger logger, string user, Guid jobId, string state);

    [LoggerMessage(3, LogLevel.Information, "{User} removed job {JobId}")]
    public static partial void JobRemoved(ILogger logger, string user, Guid jobId);

    [LoggerMessage(4, LogLevel.Information, "Job {JobId} of {Owner} ended: {State}, exit code {ExitCode}, signal {Signal}")]
    public static partial void JobEnded(ILogger logger, Guid jobId, string owner, string state, int? exitCode, int? signal);

    [LoggerMessage(5, LogLevel.Debug, "{User} opened an output stream of job {JobId} (follow {Follow})")]
    public static partial void StreamOpened(ILogger logger, string user, Guid jobId, bool follow);

    [LoggerMessage(6, LogLevel.Debug, "{User} closed an output stream of job {JobId}: {Bytes} bytes sent")]
    public static partial void StreamClosed(ILogger logger, string user, Guid jobId, long bytes);

    [LoggerMessage(7, LogLevel.Warning, "{User} ({Role}) may not {Operation} job {JobId} owned by {Owner}; answered NotFound")]
    public static partial void AccessDenied(ILogger logger, string user, string role, string operation, Guid jobId, string? owner);

    [LoggerMessage(8, LogLevel.Warning, "Refused TLS client {Remote} ({Subject}): {Reason}")]
    public static partial void ClientCertificateRefused(ILogger logger, string remote, string subject, string reason);

    [LoggerMessage(9, LogLevel.Information, "{User} could not start {Command}: {Status} {Message}")]
    public static partial void StartRefused(ILogger logger, string user, string command, string status, string message);

    [LoggerMessage(10, LogLevel.Information, "{User}: {Method} answered {Status}: {Message}")]
    public static partial void CallFailed(ILogger logger, string user, string method, string status, string message);

    [LoggerMessage(11, LogLevel.Error, "{User}: {Method} failed with an unexpected error (error id {ErrorId})")]
    public static partial void UnexpectedError(ILogger logger, Exception exception, string user, string method, string errorId);

    [LoggerMessage(12, LogLevel.Information, "Listening for gRPC on {Address} (mutual TLS 1.3, HTTP/2); cgroup controllers: {Controllers}")]
    public static partial void Listening(ILogger logger, string address, string controllers);

    [LoggerMessage(13, LogLevel.Information, "Shutting down with {Count} running job(s); stopping them: {StopJobs} (StopJobsOnShutdown; otherwise they keep running and the next server re-attaches to them)")]
    public static partial void ShuttingDown(ILogger logger, int count, bool stopJobs);

    [LoggerMessage(14, LogLevel.Information, "Shutdown complete: the state directory and cgroup root are released")]
    public static partial void ShutdownComplete(ILogger logger);

    [LoggerMessage(15, LogLevel.Warning, "{Problem}")]
    public static partial void ConfigurationWarning(ILogger logger, string problem);

    [LoggerMessage(17, LogLevel.Warning, "Job {JobId}: {Operation} failed in the background")]
    public static partial void JobBackgroundError(ILogger logger, Exception exception, Guid jobId, string operation);

    [LoggerMessage(16, LogLevel.Information, "Serving Prometheus metrics on http://{Address}/metrics (plain HTTP, loopback only)")]
    public static partial void MetricsListening(ILogger logger, string address);

    [LoggerMessage(30, LogLevel.Information, "{User} repeated start request {RequestId}: job {JobId} already started, nothing run again")]
    public static partial void JobStartRepeated(ILogger logger, string user, Guid jobId, string requestId);

    [LoggerMessage(130, LogLevel.Information, "Removed job {JobId} of {Owner}: it ended at {EndedAt}, longer ago than the retention time {Retention} (JobWorker:Retention:EndedJobs)")]
    public static partial void JobExpired(ILogger logger, Guid jobId, string owner, DateTimeOffset endedAt, TimeSpan retention);

    [LoggerMessage(131, LogLevel.Warning, "Could not remove expired job {JobId}; retried at the next check")]
    public static partial void JobExpiryFailed(ILogger logger, Exception exception, Guid jobId);

    [LoggerMessage(132, LogLevel.Information, "Removed job {JobId} of {Owner}, the oldest of its ended jobs, to make room for a new one: they held {Retained} jobs and {Bytes} log bytes against a quota of {MaxRetained} and {MaxBytes} (0 = none) (JobWorker:Retention:RemoveOldestOverQuota)")]
    public static partial void JobRemovedForRoom(ILogger logger, Guid jobId, string owner, int retained, long bytes, int maxRetained, long maxBytes);

    [LoggerMessage(133, LogLevel.Warning, "Could not remove job {JobId} to make room for a new one; the start is checked against the quota as it is")]
    public static partial void JobRemovalForRoomFailed(ILogger logger, Exception exception, Guid jobId);

    [LoggerMessage(140, LogLevel.Information, "Loaded new TLS files: {Material}; new connections use them, open connections keep theirs")]
    public static partial void CertificatesReloaded(ILogger logger, string material);

    [LoggerMessage(141, LogLevel.Warning, "Did not reload the TLS files: {Problem}. Still using the {Material} loaded at {LoadedAt:O} until a valid set is in place")]
    public static partial void CertificatesNotReloaded(ILogger logger, string problem, string material, DateTimeOffset loadedAt);

    [LoggerMessage(142, LogLevel.Information, "Loaded the revocation list: {Count} revoked serial number(s) from {Files}")]
    public static partial void DenyListReloaded(ILogger logger, int count, string files);

    [LoggerMessage(143, LogLevel.Warning, "Did not reload the revocation list: {Problem}. Still refusing the {Count} serial number(s) loaded at {LoadedAt:O}")]
    public static partial void DenyListNotReloaded(ILogger logger, string problem, int count, DateTimeOffset loadedAt);

    [LoggerMessage(144, LogLevel.Warning, "Closed connection {ConnectionId} of {User} from {Remote}: its client certificate (serial {Serial}) is revoked by '{Source}'")]
    public static partial void RevokedConnectionClosed(ILogger logger, string connectionId, string user, string remote, string serial, string source);

    [LoggerMessage(145, LogLevel.Warning, "Refused connection {ConnectionId} of {User} from {Remote}: the user has {Max} connections open, the most allowed ({Setting}); its calls answer ResourceExhausted and it is closed")]
    public static partial void ConnectionOverCap(ILogger logger, string connectionId, string user, string remote, int max, string setting);

    [LoggerMessage(146, LogLevel.Warning, "Closed connection {ConnectionId} of {User} from {Remote}: its client certificate (serial {Serial}) expired at {NotAfter:u}")]
    public static partial void ExpiredConnectionClosed(ILogger logger, string connectionId, string user, string remote, string serial, DateTimeOffset notAfter);
}
