using JobWorker.Cli.Commands;

namespace JobWorker.Cli.Tests;

/// <summary>The command tree parsed in-process: what reaches the server for a given command line.</summary>
public sealed class CommandLineTests
{
    private static (WorkerCli Cli, System.CommandLine.ParseResult Result) Parse(params string[] args)
    {
        var cli = new WorkerCli(new CliContext { Error = TextWriter.Null });
        return (cli, cli.Parse(args));
    }

    [Fact]
    public void Start_CommandWithDashArguments_TakesThemAsTheJobsArguments()
    {
        var (_, result) = Parse("start", "--cpu", "0.5", "bash", "-c", "echo hi", "--memory", "1G");

        Assert.Empty(result.Errors);
        var request = ((StartCommand)result.CommandResult.Command).Spec.ToRequest(result);
        Assert.Equal("bash", request.Command);
        Assert.Equal(["-c", "echo hi", "--memory", "1G"], request.Args);
        Assert.Equal(0.5, request.Limits.CpuCores);
        Assert.False(request.Limits.HasMemoryBytes);
    }

    [Fact]
    public void Start_AllLimits_MapToTheRequest()
    {
        var (_, result) = Parse(
            "--server", "https://localhost:1", "start", "--memory", "256M", "--pids", "10",
            "--io-read-bps", "/dev/sda=10M", "--io-write-bps", "/dev/sda=1M/s", "--io-read-iops", "8:0=100", "--io-write-iops", "/dev/sda=50",
            "--env", "A=1", "-e", "B=x=y", "--cwd", "/tmp", "--isolate", "pid,net,uts", "--", "/bin/echo", "--", "-n");

        Assert.Empty(result.Errors);
        var request = ((StartCommand)result.CommandResult.Command).Spec.ToRequest(result);
        Assert.Equal("/bin/echo", request.Command);
        Assert.Equal(["--", "-n"], request.Args);
        Assert.Equal(256L << 20, request.Limits.MemoryBytes);
        Assert.Equal(10, request.Limits.MaxProcesses);
        Assert.False(request.Limits.HasCpuCores);
        Assert.Equal(2, request.Limits.Io.Count);
        var sda = request.Limits.Io.Single(io => io.Device == "/dev/sda");
        Assert.Equal(10L << 20, sda.ReadBytesPerSecond);
        Assert.Equal(1L << 20, sda.WriteBytesPerSecond);
        Assert.Equal(50, sda.WriteIops);
        Assert.False(sda.HasReadIops);
        Assert.Equal(100, request.Limits.Io.Single(io => io.Device == "8:0").ReadIops);
        Assert.Equal("1", request.Env["A"]);
        Assert.Equal("x=y", request.Env["B"]);
        Assert.Equal("/tmp", request.WorkingDirectory);
        Assert.True(request.Isolation.Pid);
        Assert.True(request.Isolation.Network);
        Assert.True(request.Isolation.Uts);
        Assert.False(request.Isolation.Mount);
        Assert.False(request.Isolation.Ipc);
    }

    [Theory]
    [InlineData("start", "--memory", "12Q", "x")]
    [InlineData("start", "--cpu", "-1", "x")]
    [InlineData("start", "--cpu", "abc", "x")]
    [InlineData("start", "--pids", "0", "x")]
    [InlineData("start", "--io-read-bps", "sda", "x")]
    [InlineData("start", "--io-write-iops", "/dev/sda=fast", "x")]
    [InlineData("start", "--env", "NOVALUE", "x")]
    [InlineData("start", "--isolate", "user", "x")]
    [InlineData("start")]
    [InlineData("run", "--memory")]
    [InlineData("stop", "--grace", "soon", "id")]
    [InlineData("--connect-timeout", "-1s", "list")]
    [InlineData("status", "--connect-timeout", "0", "id")]
    [InlineData("logs", "-f", "--reconnect-timeout", "-1s", "id")]
    [InlineData("--reconnect-timeout", "25h", "run", "x")]
    [InlineData("stop")]
    [InlineData("status")]
    [InlineData("status", "a", "b")]
    [InlineData("logs", "--tail", "3", "--from-offset", "0", "id")]
    [InlineData("logs", "--tail", "-1", "id")]
    [InlineData("logs", "--from-offset", "x", "id")]
    [InlineData("list", "extra")]
    [InlineData("frobnicate")]
    [InlineData("start", "--bogus", "x")]
    public void Parse_InvalidCommandLine_HasErrors(params string[] args)
    {
        var (_, result) = Parse(args);
        Assert.NotEmpty(result.Errors);
    }
}
