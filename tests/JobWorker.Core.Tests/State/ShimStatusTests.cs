using JobWorker.Core.State;

namespace JobWorker.Core.Tests.State;

public sealed class ShimStatusTests
{
    private const string Path = "/state/jobs/x/shim.status";
    private const string Running = "version=1\nshim_pid=123\npid=124\nstarted_at_ns=1732890000123456789\n";
    private const string EndKeys = "ended_at_ns=1732890005000000100\nlog_bytes=4096\nlog_dropped_bytes=17\nlog_errno=28\noutput_incomplete=1\n";

    private static readonly DateTimeOffset Started = DateTimeOffset.UnixEpoch.AddSeconds(1732890000).AddTicks(1234567); // ns truncated to 100 ns
    private static readonly DateTimeOffset Ended = DateTimeOffset.UnixEpoch.AddSeconds(1732890005).AddTicks(1);

    [Fact]
    public void Parse_Running_StartFieldsOnly()
    {
        var status = ShimStatus.Parse(Running, Path);

        Assert.Equal(new ShimStatus { Version = 1, ShimPid = 123, Pid = 124, StartedAt = Started }, status);
        Assert.False(status.HasEnded);
        Assert.Null(status.ExitCode);
        Assert.Null(status.Signal);
        Assert.Null(status.EndedAt);
        Assert.Null(status.LogBytes);
        Assert.Null(status.OutputIncomplete);
    }

    [Fact]
    public void Parse_Exited_EndFields()
    {
        var status = ShimStatus.Parse(Running + "exit=exited\ncode=3\n" + EndKeys, Path);

        Assert.True(status.HasEnded);
        Assert.Equal(ShimExitKind.Exited, status.Exit);
        Assert.Equal(3, status.ExitCode);
        Assert.Null(status.Signal);
        Assert.Equal(Ended, status.EndedAt);
        Assert.Equal(4096, status.LogBytes);
        Assert.Equal(17, status.LogDroppedBytes);
        Assert.Equal(28, status.LogErrno);
        Assert.True(status.OutputIncomplete);
        Assert.Equal(Started, status.StartedAt);
    }

    [Fact]
    public void Parse_Signaled_SignalNotExitCode()
    {
        var status = ShimStatus.Parse(Running + "exit=signaled\ncode=9\n" + EndKeys.Replace("output_incomplete=1", "output_incomplete=0", StringComparison.Ordinal), Path);

        Assert.True(status.HasEnded);
        Assert.Equal(ShimExitKind.Signaled, status.Exit);
        Assert.Equal(9, status.Signal);
        Assert.Null(status.ExitCode);
        Assert.False(status.OutputIncomplete);
    }

    [Fact]
    public void Parse_UnknownKeysAndNoFinalNewline_Ignored()
    {
        var status = ShimStatus.Parse("future_key=anything at all\nversion=1\ncgroup_id=77\nshim_pid=123\npid=124\nstarted_at_ns=1732890000123456789", Path);

        Assert.Equal(new ShimStatus { Version = 1, ShimPid = 123, Pid = 124, StartedAt = Started }, status);
    }

    [Fact]
    public void Parse_NewerVersion_ErrorNamesVersionsEvenIfTheRestDiffers()
    {
        var ex = Assert.Throws<StateFormatException>(() => ShimStatus.Parse("version=2\npid:124\nstarted_at=2024-11-29\n", Path));

        Assert.Equal($"shim.status {Path} line 1: version 2 is newer than this server reads (1); the job was started by a newer JobWorker. Use a newer server.", ex.Message);
        Assert.Equal(Path, ex.Path);
    }

    [Theory]
    [InlineData("version")]
    [InlineData("shim_pid")]
    [InlineData("pid")]
    [InlineData("started_at_ns")]
    public void Parse_MissingStartKey_ErrorNamesKey(string key)
    {
        var text = string.Concat(Running.Split('\n').Where(line => !line.StartsWith(key + "=", StringComparison.Ordinal)).Select(line => line + "\n"));

        var ex = Assert.Throws<StateFormatException>(() => ShimStatus.Parse(text, Path));

        Assert.Equal($"shim.status {Path}: the required key '{key}' is missing.", ex.Message);
    }

    [Theory]
    [InlineData("code")]
    [InlineData("ended_at_ns")]
    [InlineData("log_bytes")]
    [InlineData("log_dropped_bytes")]
    [InlineData("log_errno")]
    [InlineData("output_incomplete")]
    public void Parse_MissingEndKey_ErrorNamesKey(string key)
    {
        var text = string.Concat((Running + "exit=exited\ncode=0\n" + EndKeys).Split('\n').Where(line => !line.StartsWith(key + "=", StringComparison.Ordinal)).Select(line => line + "\n"));

        var ex = Assert.Throws<StateFormatException>(() => ShimStatus.Parse(text, Path));

        Assert.Equal($"shim.status {Path}: the required key '{key}' is missing.", ex.Message);
    }

    [Theory]
    [InlineData("pid=12a\n", 3, "'pid' is '12a', not a non-negative decimal number")]
    [InlineData("pid=-5\n", 3, "'pid' is '-5', not a non-negative decimal number")]
    [InlineData("pid= 5\n", 3, "'pid' is ' 5', not a non-negative decimal number")]
    [InlineData("pid=\n", 3, "'pid' is '', not a non-negative decimal number")]
    [InlineData("pid=0\n", 3, "'pid' is 0, not a process id")]
    [InlineData("pid=99999999999\n", 3, "'pid' is 99999999999, too large")]
    [InlineData("started_at_ns=99999999999999999999\n", 4, "'started_at_ns' is '99999999999999999999', not a non-negative decimal number")]
    public void Parse_BadNumber_ErrorNamesFileLineAndKey(string replacement, int line, string message)
    {
        var key = replacement[..replacement.IndexOf('=', StringComparison.Ordinal)];
        var lines = Running.Split('\n');
        var text = string.Concat(lines.Where(l => l.Length > 0).Select(l => l.StartsWith(key + "=", StringComparison.Ordinal) ? replacement : l + "\n"));

        var ex = Assert.Throws<StateFormatException>(() => ShimStatus.Parse(text, Path));

        Assert.Equal($"shim.status {Path} line {line}: {message}.", ex.Message);
    }

    [Theory]
    [InlineData("exit=crashed\ncode=1\n", 5, "'exit' is 'crashed', expected 'exited' or 'signaled'")]
    [InlineData("code=1\n", 5, "'code' without 'exit'")]
    [InlineData("garbage line\n", 5, "expected key=value, found 'garbage line'")]
    [InlineData("=1\n", 5, "expected key=value, found '=1'")]
    [InlineData("pid=124\n", 5, "'pid' appears twice (first on line 3)")]
    public void Parse_MalformedLines_ErrorNamesLine(string extra, int line, string message)
    {
        var ex = Assert.Throws<StateFormatException>(() => ShimStatus.Parse(Running + extra, Path));

        Assert.Equal($"shim.status {Path} line {line}: {message}.", ex.Message);
    }

    [Fact]
    public void Parse_OutputIncompleteNotABoolean_Error()
    {
        var ex = Assert.Throws<StateFormatException>(() => ShimStatus.Parse(Running + "exit=exited\ncode=0\n" + EndKeys.Replace("output_incomplete=1", "output_incomplete=2", StringComparison.Ordinal), Path));

        Assert.Equal($"shim.status {Path} line 11: 'output_incomplete' is 2, expected 0 or 1.", ex.Message);
    }
}
