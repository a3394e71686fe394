using JobWorker.Core.Jobs;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Jobs;

public sealed class JobStartFailureTests : IDisposable
{
    private readonly string _scratch;

    public JobStartFailureTests()
    {
        _scratch = Path.Combine(Path.GetTempPath(), "jobworker-test-files-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_scratch);
        File.SetUnixFileMode(_scratch, (UnixFileMode)0b111_101_101);
    }

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    private static void AssertNothingLeft(TestRunner t)
    {
        Assert.Empty(Directory.EnumerateDirectories(t.Runner.CgroupRoot));
        Assert.Empty(t.JobDirectories());
        Assert.Empty(t.Runner.Jobs);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_MissingExecutable_ThrowsExecutableNotFound()
    {
        await using var t = TestRunner.Create();

        var ex = Assert.Throws<JobStartException>(() => t.Runner.Start(new JobSpec("/nope")));

        Assert.Equal(JobStartFailure.ExecutableNotFound, ex.Reason);
        Assert.Equal(2, ex.Errno);
        Assert.Equal("Executable '/nope' not found (ENOENT).", ex.Message);
        AssertNothingLeft(t);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_BareNameNotInPath_ThrowsExecutableNotFound()
    {
        await using var t = TestRunner.Create();

        var ex = Assert.Throws<JobStartException>(() => t.Runner.Start(new JobSpec("no-such-program-jw")));

        Assert.Equal(JobStartFailure.ExecutableNotFound, ex.Reason);
        Assert.Contains("not found in the job's PATH", ex.Message, StringComparison.Ordinal);
        AssertNothingLeft(t);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_FileWithoutExecuteBit_ThrowsPermissionDenied()
    {
        var file = Path.Combine(_scratch, "script");
        await File.WriteAllTextAsync(file, "#!/bin/sh\necho hi\n", TestContext.Current.CancellationToken);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        await using var t = TestRunner.Create();

        var ex = Assert.Throws<JobStartException>(() => t.Runner.Start(new JobSpec(file)));

        Assert.Equal(JobStartFailure.PermissionDenied, ex.Reason);
        Assert.Equal(13, ex.Errno);
        Assert.Contains("EACCES", ex.Message, StringComparison.Ordinal);
        AssertNothingLeft(t);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_ExecutableNotForJobUser_ThrowsPermissionDenied()
    {
        // Executable for root only: the exec happens as nobody, after the credential switch.
        var file = Path.Combine(_scratch, "root-only");
        File.Copy("/bin/true", file);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        await using var t = TestRunner.Create();

        var ex = Assert.Throws<JobStartException>(() => t.Runner.Start(new JobSpec(file)));

        Assert.Equal(JobStartFailure.PermissionDenied, ex.Reason);
        Assert.Contains("nobody", ex.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_GarbageWithExecuteBit_ThrowsNotExecutable()
    {
        var file = Path.Combine(_scratch, "garbage");
        await File.WriteAllBytesAsync(file, [0x7f, 0x45, 0x4c, 0x46, 1, 2, 3, 4, 5, 6, 7, 8, 9], TestContext.Current.CancellationToken);
        File.SetUnixFileMode(file, (UnixFileMode)0b111_101_101);
        await using var t = TestRunner.Create();

        var ex = Assert.Throws<JobStartException>(() => t.Runner.Start(new JobSpec(file)));

        Assert.Equal(JobStartFailure.NotExecutable, ex.Reason);
        Assert.Contains("ENOEXEC", ex.Message, StringComparison.Ordinal);
        AssertNothingLeft(t);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_MissingWorkingDirectory_ThrowsBadWorkingDirectory()
    {
        await using var t = TestRunner.Create();

        var ex = Assert.Throws<JobStartException>(() => t.Runner.Start(new JobSpec(TestRunner.TestProcess) { WorkingDirectory = "/no/such/dir" }));

        Assert.Equal(JobStartFailure.BadWorkingDirectory, ex.Reason);
        Assert.Equal("Working directory '/no/such/dir' cannot be entered by user nobody (uid 65534): No such file or directory (ENOENT).", ex.Message);
        AssertNothingLeft(t);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_WorkingDirectoryNotAccessibleToJobUser_ThrowsBadWorkingDirectory()
    {
        var dir = Path.Combine(_scratch, "private");
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await using var t = TestRunner.Create();

        var ex = Assert.Throws<JobStartException>(() => t.Runner.Start(new JobSpec(TestRunner.TestProcess) { WorkingDirectory = dir }));

        Assert.Equal(JobStartFailure.BadWorkingDirectory, ex.Reason);
        Assert.Equal(13, ex.Errno);
    }

    public static TheoryData<string, JobSpec> InvalidSpecs => new()
    {
        { "Command is empty", new JobSpec("") },
        { "Command is empty", new JobSpec("   ") },
        { "Command 'bin/ls' is a relative path", new JobSpec("bin/ls") },
        { "Command contains a NUL", new JobSpec("/bin/l\0s") },
        { "Arguments[1] contains a NUL", new JobSpec("/bin/echo", ["ok", "a\0b"]) },
        { "Arguments[0] is null", new JobSpec("/bin/echo", [null!]) },
        { "WorkingDirectory 'tmp' must be an absolute path", new JobSpec("/bin/true") { WorkingDirectory = "tmp" } },
        { "Environment variable name 'A=B'", new JobSpec("/bin/true") { Environment = new Dictionary<string, string> { ["A=B"] = "x" } } },
        { "Environment['X'] contains a NUL", new JobSpec("/bin/true") { Environment = new Dictionary<string, string> { ["X"] = "a\0" } } },
        { "Limits.CpuCores must be a positive number", new JobSpec("/bin/true") { Limits = new() { CpuCores = 0 } } },
        { "Limits.CpuCores must be a positive number", new JobSpec("/bin/true") { Limits = new() { CpuCores = -1 } } },
        { "Limits.CpuCores must be a positive number", new JobSpec("/bin/true") { Limits = new() { CpuCores = double.NaN } } },
        { "below the kernel's minimum of 0.01 cores", new JobSpec("/bin/true") { Limits = new() { CpuCores = 0.001 } } },
        { "Limits.MemoryBytes must be at least", new JobSpec("/bin/true") { Limits = new() { MemoryBytes = 100 } } },
        { "Limits.MaxProcesses must be at least 1", new JobSpec("/bin/true") { Limits = new() { MaxProcesses = 0 } } },
        { "Limits.Io[0] for device '8:0' sets no limit", new JobSpec("/bin/true") { Limits = new() { Io = [new IoLimit("8:0")] } } },
        { "Limits.Io[0].WriteBytesPerSecond must be positive", new JobSpec("/bin/true") { Limits = new() { Io = [new IoLimit("8:0") { WriteBytesPerSecond = -5 }] } } },
        { "Limits.Io[0].Device '/dev/null' is not a block device", new JobSpec("/bin/true") { Limits = new() { Io = [new IoLimit("/dev/null") { ReadIops = 10 }] } } },
        { "Limits.Io[0].Device 'sda' must be an absolute device path", new JobSpec("/bin/true") { Limits = new() { Io = [new IoLimit("sda") { ReadIops = 10 }] } } },
        { "is not a block device on this host", new JobSpec("/bin/true") { Limits = new() { Io = [new IoLimit("4095:4095") { ReadIops = 10 }] } } },
    };

    [Theory(Timeout = 30_000)]
    [MemberData(nameof(InvalidSpecs))]
    public async Task Start_InvalidSpec_ThrowsArgumentExceptionNamingField(string expected, JobSpec spec)
    {
        await using var t = TestRunner.Create();

        var ex = Assert.Throws<ArgumentException>(() => t.Runner.Start(spec));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Equal("spec", ex.ParamName);
        AssertNothingLeft(t);
    }

    public static TheoryData<string, ResourceLimits> LimitsByController => new()
    {
        { "cpu", new ResourceLimits { CpuCores = 0.5 } },
        { "memory", new ResourceLimits { MemoryBytes = 64 << 20 } },
        { "pids", new ResourceLimits { MaxProcesses = 10 } },
        { "io", new ResourceLimits { Io = [new IoLimit(FirstBlockDevice()) { WriteBytesPerSecond = 1 << 20 }] } },
    };

    [Theory(Timeout = 30_000)]
    [MemberData(nameof(LimitsByController))]
    public async Task Start_LimitWithoutController_ThrowsNamingControllerAndReason(string controller, ResourceLimits limits)
    {
        await using var t = TestRunner.Create();
        Assert.SkipWhen(t.Runner.AvailableControllers.Contains(controller), $"the {controller} controller is available on this host");

        var ex = Assert.Throws<CgroupControllerUnavailableException>(() => t.Runner.Start(new JobSpec("/bin/true") { Limits = limits }));

        Assert.Equal(controller, ex.Controller);
        Assert.Contains($"The {controller} controller is not", ex.Message, StringComparison.Ordinal);
        if (TestRunner.CgroupMount.EndsWith("/unified", StringComparison.Ordinal))
        {
            Assert.Contains("v1/hybrid mode", ex.Message, StringComparison.Ordinal);
        }

        AssertNothingLeft(t);
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_AfterDispose_ThrowsObjectDisposed()
    {
        var t = TestRunner.Create();
        await t.DisposeAsync();

        Assert.Throws<ObjectDisposedException>(() => t.Runner.Start(new JobSpec("/bin/true")));
    }

    [Fact]
    public void Create_InvalidOptions_ThrowsArgumentException()
    {
        Assert.Contains("StateDirectory", Assert.Throws<ArgumentException>(() => JobRunner.Create(new JobRunnerOptions { StateDirectory = "logs" })).Message, StringComparison.Ordinal);
        Assert.Contains("LogSizeLimitBytes", Assert.Throws<ArgumentException>(() => JobRunner.Create(new JobRunnerOptions { LogSizeLimitBytes = 0 })).Message, StringComparison.Ordinal);
        Assert.Contains("DefaultStopGrace", Assert.Throws<ArgumentException>(() => JobRunner.Create(new JobRunnerOptions { DefaultStopGrace = TimeSpan.FromSeconds(-1) })).Message, StringComparison.Ordinal);
        Assert.Contains("SupervisorPoolSize must be between 0", Assert.Throws<ArgumentException>(() => JobRunner.Create(new JobRunnerOptions { SupervisorPoolSize = -1 })).Message, StringComparison.Ordinal);
        Assert.Contains("and 64, not 65", Assert.Throws<ArgumentException>(() => JobRunner.Create(new JobRunnerOptions { SupervisorPoolSize = 65 })).Message, StringComparison.Ordinal);
        Assert.Contains("not inside the cgroup2 mount", Assert.Throws<ArgumentException>(() => JobRunner.Create(new JobRunnerOptions { CgroupRoot = "/tmp/x", StateDirectory = "/tmp/jw-never-created" })).Message, StringComparison.Ordinal);
    }

    /// <summary>Any whole-disk block device of this host (for messages only; nothing is written).</summary>
    internal static string FirstBlockDevice()
    {
        foreach (var dir in Directory.Exists("/sys/block") ? Directory.EnumerateDirectories("/sys/block") : [])
        {
            var dev = Path.Combine(dir, "dev");
            if (File.Exists(dev))
            {
                return File.ReadAllText(dev).Trim();
            }
        }

        return "8:0";
    }
}
