using System.Diagnostics.Metrics;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using JobWorker.Core.Jobs;
using JobWorker.Protocol.V1;
using JobWorker.Server.Configuration;
using JobWorker.Server.Diagnostics;
using JobWorker.Server.Errors;
using JobWorker.Server.Hosting;
using JobWorker.Server.Services;

namespace JobWorker.Server.Tests;

/// <summary>Small components on their own: request validation, unknown fields, addresses, the status mapping, the metrics meter.</summary>
public sealed class UnitTests
{
    private readonly RequestValidator _validator = new(new ServerOptions { MaxArguments = 4, MaxArgumentBytes = 200, MaxEnvironmentVariables = 2 });

    [Theory]
    [InlineData(-1)]
    [InlineData(65)]
    public void ServerOptions_SupervisorPoolSizeOutOfRange_NamedWithItsRange(int size)
    {
        var errors = new ServerOptions { SupervisorPoolSize = size }.Validate();

        Assert.Contains($"JobWorker:SupervisorPoolSize must be between 0 (start each supervisor with its job) and 64 (is {size})", errors);
        Assert.DoesNotContain(errors, e => e.Contains("SupervisorPoolSize", StringComparison.Ordinal) && !e.EndsWith($"(is {size})", StringComparison.Ordinal));
        Assert.DoesNotContain(new ServerOptions { SupervisorPoolSize = 0 }.Validate(), e => e.Contains("SupervisorPoolSize", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("-00:00:01")]
    [InlineData("01:00:01")]
    public void ServerOptions_UserStartAheadTimeOutOfRange_NamedWithItsRange(string time)
    {
        var errors = new ServerOptions { UserStartAheadTime = TimeSpan.Parse(time, System.Globalization.CultureInfo.InvariantCulture) }.Validate();

        Assert.Contains(errors, e => e.StartsWith("JobWorker:UserStartAheadTime must be between 0 (make no start ready per user) and 01:00:00", StringComparison.Ordinal));
        Assert.DoesNotContain(new ServerOptions { UserStartAheadTime = TimeSpan.Zero }.Validate(), e => e.Contains("UserStartAheadTime", StringComparison.Ordinal));
    }

    [Fact]
    public void ToSpec_ValidRequest_BuildsSpecOwnedByCaller()
    {
        var request = new StartJobRequest { Command = "/bin/echo", WorkingDirectory = "/tmp", Limits = new() { CpuCores = 0.5, MemoryBytes = 64 << 20 } };
        request.Args.Add("hi");
        request.Env["A"] = "1";

        var spec = _validator.ToSpec(request, "alice");

        Assert.Equal("/bin/echo", spec.Command);
        Assert.Equal(["hi"], spec.Arguments);
        Assert.Equal("1", spec.Environment["A"]);
        Assert.Equal("/tmp", spec.WorkingDirectory);
        Assert.Equal(0.5, spec.Limits.CpuCores);
        Assert.Equal(64 << 20, spec.Limits.MemoryBytes);
        Assert.Null(spec.Isolation);
        Assert.Equal("alice", spec.Owner);
    }

    public static TheoryData<string, string> InvalidStarts => new()
    {
        { "command", "{}" },
        { "command", """{ "command": "  " }""" },
        { "command", """{ "command": "/bin/e\u0000cho" }""" },
        { "args[1]", """{ "command": "x", "args": ["a", "b\u0000"] }""" },
        { "args", """{ "command": "x", "args": ["1", "2", "3", "4", "5"] }""" },
        { "args", $$"""{ "command": "x", "args": ["{{new string('a', 300)}}"] }""" },
        { "env", """{ "command": "x", "env": { "": "v" } }""" },
        { "env[A=B]", """{ "command": "x", "env": { "A=B": "v" } }""" },
        { "env[A]", """{ "command": "x", "env": { "A": "v\u0000" } }""" },
        { "env", """{ "command": "x", "env": { "A": "1", "B": "2", "C": "3" } }""" },
        { "working_directory", """{ "command": "x", "workingDirectory": "relative" }""" },
        { "limits.cpu_cores", """{ "command": "x", "limits": { "cpuCores": 0 } }""" },
        { "limits.cpu_cores", """{ "command": "x", "limits": { "cpuCores": -1 } }""" },
        { "limits.cpu_cores", """{ "command": "x", "limits": { "cpuCores": "NaN" } }""" },
        { "limits.memory_bytes", """{ "command": "x", "limits": { "memoryBytes": "1000" } }""" },
        { "limits.max_processes", """{ "command": "x", "limits": { "maxProcesses": "0" } }""" },
        { "limits.io[0].device", """{ "command": "x", "limits": { "io": [ { "device": "", "readIops": "5" } ] } }""" },
        { "limits.io[0]", """{ "command": "x", "limits": { "io": [ { "device": "/dev/sda" } ] } }""" },
        { "limits.io[0].write_bytes_per_second", """{ "command": "x", "limits": { "io": [ { "device": "8:0", "writeBytesPerSecond": "-5" } ] } }""" },
    };

    [Theory]
    [MemberData(nameof(InvalidStarts))]
    public void ToSpec_Invalid_ThrowsNamingTheField(string field, string json)
    {
        var request = JsonParser.Default.Parse<StartJobRequest>(json);

        var e = Assert.Throws<InvalidRequestException>(() => _validator.ToSpec(request, "alice"));

        Assert.Equal(field, e.Field);
        Assert.StartsWith(field + ": ", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("42")]
    [InlineData("not-a-uuid")]
    [InlineData("{0f8fad5b-d9cb-469f-a165-70867728950e}")]
    public void ParseJobId_Malformed_ThrowsNamingJobId(string id)
    {
        var e = Assert.Throws<InvalidRequestException>(() => RequestValidator.ParseJobId(id));
        Assert.Equal("job_id", e.Field);
    }

    [Fact]
    public void ParseJobId_WithOrWithoutDashes_Accepted()
    {
        var id = Guid.NewGuid();
        Assert.Equal(id, RequestValidator.ParseJobId(id.ToString("D")));
        Assert.Equal(id, RequestValidator.ParseJobId(id.ToString("N")));
        Assert.Equal(id.ToString("D"), RequestValidator.FormatJobId(id));
    }

    [Fact]
    public void ToGrace_Range_Checked()
    {
        var validator = new RequestValidator(new ServerOptions { MaxStopGrace = TimeSpan.FromMinutes(1) });
        Assert.Null(validator.ToGrace(null));
        Assert.Equal(TimeSpan.FromSeconds(3), validator.ToGrace(Duration.FromTimeSpan(TimeSpan.FromSeconds(3))));
        Assert.Equal("grace", Assert.Throws<InvalidRequestException>(() => validator.ToGrace(new Duration { Seconds = -1 })).Field);
        Assert.Equal("grace", Assert.Throws<InvalidRequestException>(() => validator.ToGrace(new Duration { Seconds = 61 })).Field);
        Assert.Equal("grace", Assert.Throws<InvalidRequestException>(() => validator.ToGrace(new Duration { Seconds = 1, Nanos = -5 })).Field);
    }

    [Fact]
    public void ToReadOptions_Positions_CheckedAndMapped()
    {
        Assert.Equal(10, RequestValidator.ToReadOptions(new StreamOutputRequest { FromOffset = 10 }).FromOffset);
        Assert.Equal(3, RequestValidator.ToReadOptions(new StreamOutputRequest { TailLines = 3, Follow = true }).TailLines);
        Assert.True(RequestValidator.ToReadOptions(new StreamOutputRequest { Follow = true }).Follow);
        Assert.Equal("from_offset", Assert.Throws<InvalidRequestException>(() => RequestValidator.ToReadOptions(new StreamOutputRequest { FromOffset = -1 })).Field);
        Assert.Equal("tail_lines", Assert.Throws<InvalidRequestException>(() => RequestValidator.ToReadOptions(new StreamOutputRequest { TailLines = -1 })).Field);
    }

    [Fact]
    public void UnknownFields_TopLevelAndNested_Found()
    {
        Assert.Null(UnknownFields.Find(new StartJobRequest { Command = "x", Limits = new() { CpuCores = 1 } }));

        var top = WithUnknownField(new GetJobRequest { JobId = "x" }, 99);
        Assert.Equal("GetJobRequest: unknown field number 99", UnknownFields.Find(top));

        var nested = new StartJobRequest { Command = "x", Limits = WithUnknownField(new JobWorker.Protocol.V1.ResourceLimits { MemoryBytes = 5 }, 42) };
        Assert.Equal("limits: unknown field number 42", UnknownFields.Find(nested));

        var inList = new StartJobRequest { Command = "x", Limits = new() };
        inList.Limits.Io.Add(new JobWorker.Protocol.V1.IoLimit { Device = "8:0" });
        inList.Limits.Io.Add(WithUnknownField(new JobWorker.Protocol.V1.IoLimit { Device = "8:1" }, 7));
        Assert.Equal("limits.io[1]: unknown field number 7", UnknownFields.Find(inList));
    }

    [Theory]
    [InlineData("127.0.0.1:50051", "127.0.0.1", 50051)]
    [InlineData("[::1]:1", "::1", 1)]
    [InlineData("0.0.0.0:0", "0.0.0.0", 0)]
    [InlineData("localhost:8080", null, 8080)]
    public void ListenAddress_Valid_Parsed(string text, string? ip, int port)
    {
        Assert.True(ListenAddress.TryParse(text, out var address, out _));
        Assert.Equal(ip, address.Address?.ToString());
        Assert.Equal(port, address.Port);
    }

    [Theory]
    [InlineData("")]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    [InlineData("localhost")]
    [InlineData("localhost:99999")]
    [InlineData("localhost:0")]
    [InlineData("example.com:80")]
    public void ListenAddress_Invalid_Refused(string text)
    {
        Assert.False(ListenAddress.TryParse(text, out _, out var error));
        // The message names the refused text (or says it is empty).
        Assert.Contains(text.Length == 0 ? "the address is empty" : $"'{text}'", error, StringComparison.Ordinal);
    }

    [Fact]
    public void ServerOptions_Invalid_EveryProblemNamed()
    {
        var errors = new ServerOptions { Listen = "nowhere", MetricsListen = "0.0.0.0:9000", MaxArguments = 0, DefaultStopGrace = TimeSpan.FromHours(1), MaxRunningJobsPerUser = -1, RequiredIsolation = (JobWorker.Core.Jobs.JobIsolation)64 }.Validate();

        Assert.Contains(errors, e => e.StartsWith("JobWorker:Listen", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("JobWorker:MetricsListen", StringComparison.Ordinal) && e.Contains("loopback", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("JobWorker:MaxArguments", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("JobWorker:DefaultStopGrace", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("JobWorker:MaxRunningJobsPerUser", StringComparison.Ordinal));
        Assert.Contains("JobWorker:RequiredIsolation '64' has unknown flags; use None or a comma list of Pid, Mount, Network, Ipc, Uts", errors);
        Assert.Empty(new ServerOptions().Validate());
    }

    [Fact]
    public void QuotaRetentionDiskOptions_Invalid_EveryProblemNamed()
    {
        var quotas = new QuotaOptions
        {
            Default = new QuotaLimits { MaxRetainedJobs = -1 },
            Roles = { ["root"] = new QuotaLimits(), ["admin"] = new QuotaLimits { MaxLogBytes = -5 } },
            Users = { ["alice"] = new QuotaLimits { MaxRunningJobs = -2 } },
        }.Validate();
        var retention = new RetentionOptions { EndedJobs = TimeSpan.Zero, CheckInterval = TimeSpan.Zero }.Validate();
        var disk = new DiskOptions { MinFreePercent = 100, MinFreeBytes = -1 }.Validate();

        Assert.Equal(
            [
                "JobWorker:Quotas:Default:MaxRetainedJobs must be 0 (no quota) or positive (is -1)",
                "JobWorker:Quotas:Roles:root: 'root' is not a role; the roles are 'user' and 'admin'",
                "JobWorker:Quotas:Roles:admin:MaxLogBytes must be 0 (no quota) or positive (is -5)",
                "JobWorker:Quotas:Users:alice:MaxRunningJobs must be 0 (no quota) or positive (is -2)",
            ],
            quotas);
        Assert.Equal(2, retention.Count);
        Assert.StartsWith("JobWorker:Retention:EndedJobs must be positive", retention[0], StringComparison.Ordinal);
        Assert.StartsWith("JobWorker:Retention:CheckInterval", retention[1], StringComparison.Ordinal);
        Assert.Equal(["JobWorker:Disk:MinFreePercent must be at least 0 (off) and below 100 (is 100)", "JobWorker:Disk:MinFreeBytes must be 0 (off) or positive (is -1)"], disk);
        Assert.Empty(new QuotaOptions().Validate());
        Assert.Empty(new RetentionOptions { EndedJobs = null }.Validate());
        Assert.Empty(new DiskOptions().Validate());
    }

    [Fact]
    public void QuotaOptions_Resolve_UserOverRoleOverDefaultPerLimit()
    {
        var quotas = new QuotaOptions
        {
            Default = new QuotaLimits { MaxRetainedJobs = 10, MaxLogBytes = 1000 },
            Roles = { ["admin"] = new QuotaLimits { MaxRetainedJobs = 0, MaxRunningJobs = 7 } },
            Users = { ["carol"] = new QuotaLimits { MaxLogBytes = 5 } },
        };

        var carol = quotas.Resolve("carol", "admin", maxRunningJobsPerUser: 100);
        var dave = quotas.Resolve("dave", "user", maxRunningJobsPerUser: 100);

        Assert.Equal(new EffectiveQuota(7, "JobWorker:Quotas:Roles:admin:MaxRunningJobs", 0, "JobWorker:Quotas:Roles:admin:MaxRetainedJobs", 5, "JobWorker:Quotas:Users:carol:MaxLogBytes"), carol);
        Assert.Equal(new EffectiveQuota(100, "JobWorker:MaxRunningJobsPerUser", 10, "JobWorker:Quotas:Default:MaxRetainedJobs", 1000, "JobWorker:Quotas:Default:MaxLogBytes"), dave);
    }

    [Fact]
    public void ToStatus_KnownExceptions_MappedAndUnknownHidden()
    {
        Assert.Equal(StatusCode.InvalidArgument, ErrorInterceptor.ToStatus(new InvalidRequestException("args[0]", "bad"), false).StatusCode);
        Assert.Equal(StatusCode.NotFound, ErrorInterceptor.ToStatus(new JobNotFoundException("x"), false).StatusCode);
        Assert.Equal(StatusCode.ResourceExhausted, ErrorInterceptor.ToStatus(new RunningJobLimitException("x"), false).StatusCode);
        Assert.Equal(StatusCode.ResourceExhausted, ErrorInterceptor.ToStatus(new QuotaExceededException("x"), false).StatusCode);
        Assert.Equal(StatusCode.FailedPrecondition, ErrorInterceptor.ToStatus(new JobStillRunningException("x"), false).StatusCode);
        Assert.Equal(StatusCode.FailedPrecondition, ErrorInterceptor.ToStatus(new CgroupControllerUnavailableException("memory", "no memory controller"), false).StatusCode);
        Assert.Equal(StatusCode.FailedPrecondition, ErrorInterceptor.ToStatus(new JobStartException(JobStartFailure.ExecutableNotFound, "not found"), false).StatusCode);
        Assert.Equal(StatusCode.ResourceExhausted, ErrorInterceptor.ToStatus(new JobStartException(JobStartFailure.SpawnFailed, "EAGAIN"), false).StatusCode);
        var exhausted = ErrorInterceptor.ToStatus(new JobStartException(JobStartFailure.UserIdsExhausted, "No id is left for owner 'carol'"), false);
        Assert.Equal((StatusCode.ResourceExhausted, "No id is left for owner 'carol'"), (exhausted.StatusCode, exhausted.Detail));
        Assert.Equal(StatusCode.Unauthenticated, ErrorInterceptor.ToStatus(new UnauthenticatedException("x"), false).StatusCode);
        Assert.Equal(StatusCode.Unavailable, ErrorInterceptor.ToStatus(new ServerShuttingDownException("x"), false).StatusCode);
        Assert.Equal(StatusCode.Cancelled, ErrorInterceptor.ToStatus(new OperationCanceledException(), true).StatusCode);
        Assert.Equal(StatusCode.Cancelled, ErrorInterceptor.ToStatus(new InvalidOperationException("request is complete"), true).StatusCode);
        Assert.Equal(StatusCode.Internal, ErrorInterceptor.ToStatus(new InvalidOperationException("bug"), false).StatusCode);

        var cgroup = ErrorInterceptor.ToStatus(new JobStartException(JobStartFailure.CgroupError, "secret path /sys/fs/cgroup/x"), false);
        Assert.Equal(StatusCode.Internal, cgroup.StatusCode);
        Assert.DoesNotContain("secret", cgroup.Detail, StringComparison.Ordinal);

        // Only our own validation errors reach clients as InvalidArgument; a stray ArgumentException is a bug.
        var internalError = ErrorInterceptor.ToStatus(new ArgumentException("secret detail"), false);
        Assert.Equal(StatusCode.Internal, internalError.StatusCode);
        Assert.DoesNotContain("secret", internalError.Detail, StringComparison.Ordinal);
        Assert.Equal(StatusCode.Internal, ErrorInterceptor.ToStatus(new InvalidCastException("secret"), false).StatusCode);
    }

    [Fact]
    public void EndsTheLog_ReadWithoutFollowSettledBeforeTheJobWroteAndEnded_NoFinalStatus()
    {
        // The reader found nothing at offset 0, then the job wrote 5 bytes and ended before the status was read.
        var ended = EndedStatus(logBytes: 5);

        Assert.False(JobWorkerService.EndsTheLog(follow: false, readStart: 0, readEnd: null, ended));
        Assert.False(JobWorkerService.EndsTheLog(follow: false, readStart: 3, readEnd: null, ended));
        Assert.False(JobWorkerService.EndsTheLog(follow: false, readStart: 0, readEnd: 4, ended));
    }

    [Fact]
    public void EndsTheLog_ReadReachedTheFinalLength_FinalStatus()
    {
        var ended = EndedStatus(logBytes: 5);

        Assert.True(JobWorkerService.EndsTheLog(follow: false, readStart: 0, readEnd: 5, ended));
        Assert.True(JobWorkerService.EndsTheLog(follow: false, readStart: 5, readEnd: null, ended)); // tail 0, or from the end
        Assert.True(JobWorkerService.EndsTheLog(follow: false, readStart: 9, readEnd: null, ended)); // from past the end
        Assert.True(JobWorkerService.EndsTheLog(follow: false, readStart: 0, readEnd: null, EndedStatus(logBytes: 0)));
        Assert.True(JobWorkerService.EndsTheLog(follow: true, readStart: 0, readEnd: 5, ended));
        Assert.False(JobWorkerService.EndsTheLog(follow: true, readStart: 0, readEnd: 5, ended with { State = global::JobWorker.Core.Jobs.JobState.Running, EndedAt = null }));
    }

    private static global::JobWorker.Core.Jobs.JobStatus EndedStatus(long logBytes) => new()
    {
        State = global::JobWorker.Core.Jobs.JobState.Exited,
        ExitCode = 0,
        Pid = 1,
        StartedAt = DateTimeOffset.UnixEpoch,
        EndedAt = DateTimeOffset.UnixEpoch,
        LogBytes = logBytes,
    };

    [Fact]
    public void ServerMetrics_Meter_PublishesJobWorkerInstruments()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var factory = services.GetRequiredService<IMeterFactory>();
        var metrics = new ServerMetrics(factory);
        long? observed = null;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == ServerMetrics.MeterName && instrument.Name == "jobworker.streams.bytes")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => observed = value);
        listener.Start();
        metrics.BytesStreamed(4096);

        listener.RecordObservableInstruments();

        Assert.Equal(4096, observed);
    }

    [Fact]
    public void CertsCommand_Init_CreatesPkiAndRefusesToOverwrite()
    {
        var dir = Path.Combine(Path.GetTempPath(), "jobworker-certs-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            using var output = new StringWriter();
            using var error = new StringWriter();

            Assert.Equal(0, CertsCommand.Run(["init", "--dir", dir, "--client", "carol:admin"], output, error));
            Assert.True(File.Exists(Path.Combine(dir, "clients", "carol.key")));
            Assert.Contains("carol (admin)", output.ToString(), StringComparison.Ordinal);

            Assert.Equal(1, CertsCommand.Run(["init", "--dir", dir], output, error));
            Assert.Contains("already exists", error.ToString(), StringComparison.Ordinal);
            Assert.Equal(2, CertsCommand.Run(["init", "--dir", dir, "--client", "carol:root"], output, error));
            Assert.Equal(2, CertsCommand.Run(["init"], output, error));
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private static T WithUnknownField<T>(T message, int number)
        where T : IMessage<T>, new()
    {
        // Append a varint field the schema does not have; protobuf keeps it as an unknown field.
        using var stream = new MemoryStream();
        message.WriteTo(stream);
        var output = new CodedOutputStream(stream);
        output.WriteTag(number, WireFormat.WireType.Varint);
        output.WriteInt32(1);
        output.Flush();
        var parsed = new T();
        parsed.MergeFrom(stream.ToArray());
        return parsed;
    }
}
