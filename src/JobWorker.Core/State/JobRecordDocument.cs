using System.Text.Json;
using System.Text.Json.Serialization;
using JobWorker.Core.Jobs;

namespace JobWorker.Core.State;

/// <summary>
/// The on-disk shape of <c>job.json</c>, version 1. Separate from the public Jobs types so that renaming or adding a
/// property there never silently changes the file format: a change here is a format change, and needs a version.
/// </summary>
internal sealed class JobRecordDocument
{
    /// <summary>The <c>job.json</c> version this server writes and the newest it reads.</summary>
    public const int CurrentVersion = 1;

    public required int Version { get; init; }

    public required Guid Id { get; init; }

    public required JobSpecDocument Spec { get; init; }

    public string? RequestId { get; init; }

    // Optional, added without a version change: older servers of version 1 ignore it, newer ones may miss it.
    public string? RequestFingerprint { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? StopRequestedAt { get; init; }

    public DateTimeOffset? StopDeadline { get; init; }

    public JobStatusDocument? Final { get; init; }

    public static JobRecordDocument From(JobRecord record) => new()
    {
        Version = CurrentVersion,
        Id = record.Id,
        Spec = JobSpecDocument.From(record.Spec),
        RequestId = record.RequestId,
        RequestFingerprint = record.RequestFingerprint,
        CreatedAt = record.CreatedAt,
        StopRequestedAt = record.StopRequestedAt,
        StopDeadline = record.StopDeadline,
        Final = record.Final is null ? null : JobStatusDocument.From(record.Final),
    };

    public JobRecord ToRecord() => new()
    {
        Id = Id,
        Spec = Spec.ToSpec(),
        RequestId = RequestId,
        RequestFingerprint = RequestFingerprint,
        CreatedAt = CreatedAt,
        StopRequestedAt = StopRequestedAt,
        StopDeadline = StopDeadline,
        Final = Final?.ToStatus(),
    };

    /// <summary>The file's bytes: indented JSON for people reading it, ending with a newline.</summary>
    public byte[] Serialize() => [.. JsonSerializer.SerializeToUtf8Bytes(this, StateJsonContext.Default.JobRecordDocument), (byte)'\n'];

    /// <exception cref="JsonException">Not valid JSON, or a required property is missing or of the wrong type.</exception>
    public static JobRecordDocument Deserialize(ReadOnlySpan<byte> json)
        => JsonSerializer.Deserialize(json, StateJsonContext.Default.JobRecordDocument) ?? throw new JsonException("the document is 'null'");

    /// <summary>
    /// The top-level <c>"version"</c> alone, read before the rest so that a newer record is reported as newer, not
    /// as malformed. Null when there is none (or it is not an integer).
    /// </summary>
    /// <exception cref="JsonException">Not valid JSON.</exception>
    public static int? ReadVersion(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return null;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool isVersion = reader.ValueTextEquals("version"u8);
            reader.Read();
            if (isVersion)
            {
                return reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var version) ? version : null;
            }

            reader.Skip();
        }

        return null;
    }
}

internal sealed class JobSpecDocument
{
    public required string Command { get; init; }

    public required List<string> Arguments { get; init; }

    public required Dictionary<string, string> Environment { get; init; }

    public string? WorkingDirectory { get; init; }

    /// <summary>Omitted when no limit is set.</summary>
    public ResourceLimitsDocument? Limits { get; init; }

    /// <summary>
    /// The namespaces by name (<c>"Pid, Mount"</c>, or <c>"None"</c>), never <c>"All"</c>: what a record says must
    /// not change when <see cref="JobIsolation"/> gains a namespace. Records written before IPC and UTS existed say
    /// <c>"All"</c> for PID, mount and network, and are read so.
    /// </summary>
    public string? Isolation { get; init; }

    public string? Owner { get; init; }

    private static readonly JobIsolation[] Namespaces = [JobIsolation.Pid, JobIsolation.Mount, JobIsolation.Network, JobIsolation.Ipc, JobIsolation.Uts];

    internal static string FormatIsolation(JobIsolation isolation)
        => isolation == JobIsolation.None ? "None" : string.Join(", ", Namespaces.Where(n => isolation.HasFlag(n)));

    internal static JobIsolation ParseIsolation(string text)
    {
        var result = JobIsolation.None;
        foreach (var name in text.Split(',', StringSplitOptions.TrimEntries))
        {
            result |= name switch
            {
                "None" => JobIsolation.None,
                "All" => JobIsolation.Pid | JobIsolation.Mount | JobIsolation.Network,
                _ => Namespaces.FirstOrDefault(n => n.ToString() == name) is var flag && flag != JobIsolation.None
                    ? flag
                    : throw new JsonException($"isolation '{text}' names an unknown namespace '{name}'"),
            };
        }

        return result;
    }

    public static JobSpecDocument From(JobSpec spec) => new()
    {
        Command = spec.Command,
        Arguments = [.. spec.Arguments],
        Environment = new Dictionary<string, string>(spec.Environment, StringComparer.Ordinal),
        WorkingDirectory = spec.WorkingDirectory,
        Limits = spec.Limits.IsEmpty ? null : ResourceLimitsDocument.From(spec.Limits),
        Isolation = spec.Isolation is { } isolation ? FormatIsolation(isolation) : null,
        Owner = spec.Owner,
    };

    public JobSpec ToSpec() => new(Command, Arguments)
    {
        Environment = Environment,
        WorkingDirectory = WorkingDirectory,
        Limits = Limits?.ToLimits() ?? ResourceLimits.None,
        Isolation = Isolation is null ? null : ParseIsolation(Isolation),
        Owner = Owner,
    };
}

internal sealed class ResourceLimitsDocument
{
    public double? CpuCores { get; init; }

    public long? MemoryBytes { get; init; }

    public long? MaxProcesses { get; init; }

    public List<IoLimitDocument>? Io { get; init; }

    public static ResourceLimitsDocument From(ResourceLimits limits) => new()
    {
        CpuCores = limits.CpuCores,
        MemoryBytes = limits.MemoryBytes,
        MaxProcesses = limits.MaxProcesses,
        Io = limits.Io.Count == 0 ? null : [.. limits.Io.Select(IoLimitDocument.From)],
    };

    public ResourceLimits ToLimits() => new()
    {
        CpuCores = CpuCores,
        MemoryBytes = MemoryBytes,
        MaxProcesses = MaxProcesses,
        Io = Io is null ? [] : [.. Io.Select(io => io.ToLimit())],
    };
}

internal sealed class IoLimitDocument
{
    public required string Device { get; init; }

    public long? ReadBytesPerSecond { get; init; }

    public long? WriteBytesPerSecond { get; init; }

    public long? ReadIops { get; init; }

    public long? WriteIops { get; init; }

    public static IoLimitDocument From(IoLimit limit) => new()
    {
        Device = limit.Device,
        ReadBytesPerSecond = limit.ReadBytesPerSecond,
        WriteBytesPerSecond = limit.WriteBytesPerSecond,
        ReadIops = limit.ReadIops,
        WriteIops = limit.WriteIops,
    };

    public IoLimit ToLimit() => new(Device)
    {
        ReadBytesPerSecond = ReadBytesPerSecond,
        WriteBytesPerSecond = WriteBytesPerSecond,
        ReadIops = ReadIops,
        WriteIops = WriteIops,
    };
}

internal sealed class JobStatusDocument
{
    public required JobState State { get; init; }

    public required int Pid { get; init; }

    public int? ExitCode { get; init; }

    public int? Signal { get; init; }

    public bool OomKilled { get; init; }

    public required DateTimeOffset StartedAt { get; init; }

    public DateTimeOffset? EndedAt { get; init; }

    public required JobUsageDocument Usage { get; init; }

    public long LogBytes { get; init; }

    public bool LogTruncated { get; init; }

    public long LogDroppedBytes { get; init; }

    public int? LogErrno { get; init; }

    public static JobStatusDocument From(JobStatus status) => new()
    {
        State = status.State,
        Pid = status.Pid,
        ExitCode = status.ExitCode,
        Signal = status.Signal,
        OomKilled = status.OomKilled,
        StartedAt = status.StartedAt,
        EndedAt = status.EndedAt,
        Usage = JobUsageDocument.From(status.Usage),
        LogBytes = status.LogBytes,
        LogTruncated = status.LogTruncated,
        LogDroppedBytes = status.LogDroppedBytes,
        LogErrno = status.LogErrno,
    };

    public JobStatus ToStatus() => new()
    {
        State = State,
        Pid = Pid,
        ExitCode = ExitCode,
        Signal = Signal,
        OomKilled = OomKilled,
        StartedAt = StartedAt,
        EndedAt = EndedAt,
        Usage = Usage.ToUsage(),
        LogBytes = LogBytes,
        LogTruncated = LogTruncated,
        LogDroppedBytes = LogDroppedBytes,
        LogErrno = LogErrno,
    };
}

internal sealed class JobUsageDocument
{
    public long? CpuUsageMicroseconds { get; init; }

    public long? CpuThrottledPeriods { get; init; }

    public long? CpuThrottledMicroseconds { get; init; }

    public long? MemoryCurrentBytes { get; init; }

    public long? MemoryPeakBytes { get; init; }

    public long? OomKills { get; init; }

    public long? IoReadBytes { get; init; }

    public long? IoWriteBytes { get; init; }

    public long? PidsCurrent { get; init; }

    public static JobUsageDocument From(JobUsage usage) => new()
    {
        CpuUsageMicroseconds = usage.CpuUsageMicroseconds,
        CpuThrottledPeriods = usage.CpuThrottledPeriods,
        CpuThrottledMicroseconds = usage.CpuThrottledMicroseconds,
        MemoryCurrentBytes = usage.MemoryCurrentBytes,
        MemoryPeakBytes = usage.MemoryPeakBytes,
        OomKills = usage.OomKills,
        IoReadBytes = usage.IoReadBytes,
        IoWriteBytes = usage.IoWriteBytes,
        PidsCurrent = usage.PidsCurrent,
    };

    public JobUsage ToUsage() => new()
    {
        CpuUsageMicroseconds = CpuUsageMicroseconds,
        CpuThrottledPeriods = CpuThrottledPeriods,
        CpuThrottledMicroseconds = CpuThrottledMicroseconds,
        MemoryCurrentBytes = MemoryCurrentBytes,
        MemoryPeakBytes = MemoryPeakBytes,
        OomKills = OomKills,
        IoReadBytes = IoReadBytes,
        IoWriteBytes = IoWriteBytes,
        PidsCurrent = PidsCurrent,
    };
}

/// <summary>Source-generated serialization (JobWorker.Core is AOT-compatible: no reflection).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    UseStringEnumConverter = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    RespectNullableAnnotations = true,
    WriteIndented = true)]
[JsonSerializable(typeof(JobRecordDocument))]
internal sealed partial class StateJsonContext : JsonSerializerContext;
