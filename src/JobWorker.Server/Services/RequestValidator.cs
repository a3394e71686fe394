using System.Text;
using Google.Protobuf.WellKnownTypes;
using JobWorker.Core.Jobs;
using JobWorker.Core.Output;
using JobWorker.Protocol.V1;
using JobWorker.Server.Configuration;
using JobWorker.Server.Errors;
using CoreIoLimit = JobWorker.Core.Jobs.IoLimit;
using CoreLimits = JobWorker.Core.Jobs.ResourceLimits;

namespace JobWorker.Server.Services;

/// <summary>
/// Checks requests and turns them into Core types. Every refusal is an <see cref="InvalidRequestException"/>
/// that names the field in proto naming (<c>args[3]</c>, <c>limits.memory_bytes</c>), so the client can fix it.
/// Validation happens before any job is touched.
/// </summary>
public sealed class RequestValidator
{
    // Linux PATH_MAX: longer paths cannot be exec'd or chdir'd to anyway.
    internal const int MaxPathBytes = 4096;
    internal const double MinCpuCores = 0.01; // cpu.max quota must be >= 1 ms per 100 ms period
    internal const double MaxCpuCores = 1024;
    internal const long MinMemoryBytes = 1L << 20;
    internal const long MaxMemoryBytes = 1L << 50;
    internal const long MaxProcessesLimit = 4_194_304; // the kernel's PID_MAX_LIMIT
    internal const int MaxIoDevices = 16;
    internal const long MaxIoRate = 1L << 50;
    internal const int MaxTailLines = 1_000_000;
    internal const int MaxRequestIdLength = 128;

    private readonly ServerOptions _options;

    public RequestValidator(ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
    }

    /// <summary>Parses a job id (a UUID, with or without dashes).</summary>
    public static Guid ParseJobId(string? id, string field = "job_id")
    {
        if (string.IsNullOrEmpty(id))
        {
            throw new InvalidRequestException(field, "is empty; pass the id StartJob returned");
        }

        if (Guid.TryParseExact(id, "D", out var guid) || Guid.TryParseExact(id, "N", out guid))
        {
            return guid;
        }

        throw new InvalidRequestException(field, $"'{Printable(id, 40)}' is not a job id (a UUID such as 0f8fad5b-d9cb-469f-a165-70867728950e)");
    }

    /// <summary>Checks a StartJob request_id (the idempotency key): null when the request has none.</summary>
    public static string? ParseRequestId(string? requestId)
    {
        if (string.IsNullOrEmpty(requestId))
        {
            return null;
        }

        if (requestId.Length > MaxRequestIdLength)
        {
            throw new InvalidRequestException("request_id", $"has {requestId.Length} characters, more than {MaxRequestIdLength}");
        }

        if (!requestId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':'))
        {
            throw new InvalidRequestException("request_id", $"'{Printable(requestId, 40)}' may only contain A-Z, a-z, 0-9 and . _ : - (a UUID is a good choice)");
        }

        return requestId;
    }

    /// <summary>Formats a job id the way the API returns it.</summary>
    public static string FormatJobId(Guid id) => id.ToString("D");

    /// <summary>Checks a start request and builds the job's spec, owned by <paramref name="owner"/>.</summary>
    public JobSpec ToSpec(StartJobRequest request, string owner)
    {
        ArgumentNullException.ThrowIfNull(request);
        var command = request.Command;
        if (string.IsNullOrWhiteSpace(command))
        {
            throw new InvalidRequestException("command", "is empty; give an absolute path or a program name found in PATH");
        }

        CheckNoNul("command", command);
        if (Encoding.UTF8.GetByteCount(command) > MaxPathBytes)
        {
            throw new InvalidRequestException("command", $"is longer than {MaxPathBytes} bytes");
        }

        if (request.Args.Count > _options.MaxArguments)
        {
            throw new InvalidRequestException("args", $"has {request.Args.Count} arguments, more than the server allows ({_options.MaxArguments}, MaxArguments)");
        }

        // execve counts every string with its terminating NUL.
        long totalBytes = Encoding.UTF8.GetByteCount(command) + 1;
        for (var i = 0; i < request.Args.Count; i++)
        {
            CheckNoNul($"args[{i}]", request.Args[i]);
            totalBytes += Encoding.UTF8.GetByteCount(request.Args[i]) + 1;
        }

        if (request.Env.Count > _options.MaxEnvironmentVariables)
        {
            throw new InvalidRequestException("env", $"has {request.Env.Count} variables, more than the server allows ({_options.MaxEnvironmentVariables}, MaxEnvironmentVariables)");
        }

        var environment = new Dictionary<string, string>(request.Env.Count, StringComparer.Ordinal);
        foreach (var (name, value) in request.Env)
        {
            if (name.Length == 0)
            {
                throw new InvalidRequestException("env", "a variable name is empty");
            }

            var field = $"env[{Printable(name, 40)}]";
            if (name.Contains('\0', StringComparison.Ordinal) || name.Contains('=', StringComparison.Ordinal))
            {
                throw new InvalidRequestException(field, "the name contains '=' or a NUL character");
            }

            CheckNoNul(field, value);
            totalBytes += Encoding.UTF8.GetByteCount(name) + Encoding.UTF8.GetByteCount(value) + 2;
            environment[name] = value;
        }

        if (totalBytes > _options.MaxArgumentBytes)
        {
            throw new InvalidRequestException("args", $"command, arguments and environment take {totalBytes} bytes, more than the server allows ({_options.MaxArgumentBytes}, MaxArgumentBytes)");
        }

        string? workingDirectory = null;
        if (request.WorkingDirectory.Length > 0)
        {
            CheckNoNul("working_directory", request.WorkingDirectory);
            if (!request.WorkingDirectory.StartsWith('/'))
            {
                throw new InvalidRequestException("working_directory", $"'{Printable(request.WorkingDirectory, 80)}' is not an absolute path");
            }

            if (Encoding.UTF8.GetByteCount(request.WorkingDirectory) > MaxPathBytes)
            {
                throw new InvalidRequestException("working_directory", $"is longer than {MaxPathBytes} bytes");
            }

            workingDirectory = request.WorkingDirectory;
        }

        return new JobSpec(command, request.Args.ToArray())
        {
            Environment = environment,
            WorkingDirectory = workingDirectory,
            Limits = ToLimits(request.Limits),
            Isolation = request.Isolation is null ? null : ToIsolation(request.Isolation),
            Owner = owner,
        };
    }

    /// <summary>Checks a stop grace period; null means the server's default.</summary>
    public TimeSpan? ToGrace(Duration? grace)
    {
        if (grace is null)
        {
            return null;
        }

        TimeSpan value;
        try
        {
            value = grace.ToTimeSpan();
        }
        catch (InvalidOperationException)
        {
            throw new InvalidRequestException("grace", "is not a valid duration");
        }

        if (value < TimeSpan.Zero)
        {
            throw new InvalidRequestException("grace", "must not be negative");
        }

        if (value > _options.MaxStopGrace)
        {
            throw new InvalidRequestException("grace", $"{value.TotalSeconds:0.###} s is longer than the server allows ({_options.MaxStopGrace.TotalSeconds:0.###} s, MaxStopGrace)");
        }

        return value;
    }

    /// <summary>Checks a stream request's start position.</summary>
    public static OutputReadOptions ToReadOptions(StreamOutputRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        switch (request.StartCase)
        {
            case StreamOutputRequest.StartOneofCase.FromOffset:
                if (request.FromOffset < 0)
                {
                    throw new InvalidRequestException("from_offset", "must not be negative");
                }

                return new OutputReadOptions { Follow = request.Follow, FromOffset = request.FromOffset };
            case StreamOutputRequest.StartOneofCase.TailLines:
                if (request.TailLines is < 0 or > MaxTailLines)
                {
                    throw new InvalidRequestException("tail_lines", $"{request.TailLines} is out of range (0 to {MaxTailLines})");
                }

                return new OutputReadOptions { Follow = request.Follow, TailLines = request.TailLines };
            default:
                return new OutputReadOptions { Follow = request.Follow };
        }
    }

    private static CoreLimits ToLimits(Protocol.V1.ResourceLimits? limits)
    {
        if (limits is null)
        {
            return CoreLimits.None;
        }

        double? cpu = null;
        if (limits.HasCpuCores)
        {
            if (!double.IsFinite(limits.CpuCores) || limits.CpuCores < MinCpuCores || limits.CpuCores > MaxCpuCores)
            {
                throw new InvalidRequestException("limits.cpu_cores", $"{limits.CpuCores} is out of range ({MinCpuCores} to {MaxCpuCores} cores)");
            }

            cpu = limits.CpuCores;
        }

        long? memory = null;
        if (limits.HasMemoryBytes)
        {
            if (limits.MemoryBytes is < MinMemoryBytes or > MaxMemoryBytes)
            {
                throw new InvalidRequestException("limits.memory_bytes", $"{limits.MemoryBytes} is out of range ({MinMemoryBytes} to {MaxMemoryBytes} bytes)");
            }

            memory = limits.MemoryBytes;
        }

        long? processes = null;
        if (limits.HasMaxProcesses)
        {
            if (limits.MaxProcesses is < 1 or > MaxProcessesLimit)
            {
                throw new InvalidRequestException("limits.max_processes", $"{limits.MaxProcesses} is out of range (1 to {MaxProcessesLimit})");
            }

            processes = limits.MaxProcesses;
        }

        if (limits.Io.Count > MaxIoDevices)
        {
            throw new InvalidRequestException("limits.io", $"has {limits.Io.Count} devices, more than {MaxIoDevices}");
        }

        var io = new List<CoreIoLimit>(limits.Io.Count);
        for (var i = 0; i < limits.Io.Count; i++)
        {
            var limit = limits.Io[i];
            var field = $"limits.io[{i}]";
            if (string.IsNullOrWhiteSpace(limit.Device))
            {
                throw new InvalidRequestException(field + ".device", "is empty; give a block device path such as /dev/sda or MAJ:MIN");
            }

            CheckNoNul(field + ".device", limit.Device);
            if (!limit.HasReadBytesPerSecond && !limit.HasWriteBytesPerSecond && !limit.HasReadIops && !limit.HasWriteIops)
            {
                throw new InvalidRequestException(field, "sets no limit; set at least one of the rates");
            }

            io.Add(new CoreIoLimit(limit.Device)
            {
                ReadBytesPerSecond = Rate(limit.HasReadBytesPerSecond, limit.ReadBytesPerSecond, field + ".read_bytes_per_second"),
                WriteBytesPerSecond = Rate(limit.HasWriteBytesPerSecond, limit.WriteBytesPerSecond, field + ".write_bytes_per_second"),
                ReadIops = Rate(limit.HasReadIops, limit.ReadIops, field + ".read_iops"),
                WriteIops = Rate(limit.HasWriteIops, limit.WriteIops, field + ".write_iops"),
            });
        }

        return new CoreLimits { CpuCores = cpu, MemoryBytes = memory, MaxProcesses = processes, Io = io };
    }

    private static long? Rate(bool has, long value, string field)
    {
        if (!has)
        {
            return null;
        }

        return value is < 1 or > MaxIoRate
            ? throw new InvalidRequestException(field, $"{value} is out of range (1 to {MaxIoRate})")
            : value;
    }

    private static JobIsolation ToIsolation(Isolation isolation)
        => (isolation.Pid ? JobIsolation.Pid : JobIsolation.None)
            | (isolation.Mount ? JobIsolation.Mount : JobIsolation.None)
            | (isolation.Network ? JobIsolation.Network : JobIsolation.None)
            | (isolation.Ipc ? JobIsolation.Ipc : JobIsolation.None)
            | (isolation.Uts ? JobIsolation.Uts : JobIsolation.None);

    private static void CheckNoNul(string field, string value)
    {
        // A NUL would silently cut the string short at execve: refuse it instead.
        if (value.Contains('\0', StringComparison.Ordinal))
        {
            throw new InvalidRequestException(field, "contains a NUL character");
        }
    }

    // Echo client-supplied text in messages only in a bounded, printable form.
    internal static string Printable(string text, int max)
    {
        var builder = new StringBuilder(Math.Min(text.Length, max) + 1);
        foreach (var c in text.Length > max ? text[..max] : text)
        {
            builder.Append(char.IsControl(c) ? '?' : c);
        }

        return text.Length > max ? builder.Append('…').ToString() : builder.ToString();
    }
}
