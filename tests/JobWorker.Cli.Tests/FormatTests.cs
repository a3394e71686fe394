using JobWorker.Cli.Formatting;

namespace JobWorker.Cli.Tests;

public sealed class FormatTests
{
    [Theory]
    [InlineData(0L, "0 B")]
    [InlineData(1023L, "1023 B")]
    [InlineData(1024L, "1 KiB")]
    [InlineData(1536L, "1.5 KiB")]
    [InlineData(256L << 20, "256 MiB")]
    [InlineData((3L << 30) / 2, "1.5 GiB")]
    public void Bytes_Value_HumanUnits(long bytes, string expected) => Assert.Equal(expected, HumanFormat.Bytes(bytes));

    [Theory]
    [InlineData(12, "12ms")]
    [InlineData(1_500, "1.5s")]
    [InlineData(12_340, "12.3s")]
    [InlineData(192_000, "3m12s")]
    [InlineData(7_500_000, "2h05m")]
    [InlineData(97_200_000, "1d3h")]
    public void Duration_Value_HumanUnits(long ms, string expected)
        => Assert.Equal(expected, HumanFormat.Duration(TimeSpan.FromMilliseconds(ms)));

    [Fact]
    public void CommandLine_ArgumentsWithSpacesAndQuotes_AreShellQuoted()
        => Assert.Equal("bash -c 'echo '\\''hi there'\\''' ''", HumanFormat.CommandLine("bash", ["-c", "echo 'hi there'", ""]));

    [Fact]
    public void CommandLine_ControlCharacters_ShownInBashDollarQuotes()
        => Assert.Equal(
            @"printf $'\e[2J\r\n' $'it\'s\\\x00\x7f\u0085\u009b'",
            HumanFormat.CommandLine("printf", ["\u001b[2J\r\n", "it's\\\0\u007f\u0085\u009b"]));

    [Theory]
    [InlineData("plain text, unicode é ✓ and a \\ backslash", @"plain text, unicode é ✓ and a \ backslash")]
    [InlineData("\u001b[31mred\u001b[0m", @"\e[31mred\e[0m")]
    [InlineData("a\rb\nc\td", @"a\rb\nc\td")]
    [InlineData("\0\u0001\u0007\u0008\u000b\u000c\u001f\u007f", @"\x00\x01\a\b\v\f\x1f\x7f")]
    [InlineData("\u0080\u009b\u009f\u00a0", "\\u0080\\u009b\\u009f\u00a0")]
    [InlineData("\u2028\u2029\u202e\u2066\u200f", @"\u2028\u2029\u202e\u2066\u200f")]
    public void Escape_ControlCharacters_BecomeVisibleEscapes(string text, string expected)
        => Assert.Equal(expected, TerminalText.Escape(text));

    [Fact]
    public void Escape_KeepLineFeeds_OnlyLineFeedsKept()
        => Assert.Equal("one\ntwo\\r\\e", TerminalText.Escape("one\ntwo\r\u001b", keepLineFeeds: true));

    [Fact]
    public void Describe_LogSealedByAFullDisk_SaysWhyAndHowMuchWasDropped()
    {
        var job = new JobWorker.Protocol.V1.JobStatus
        {
            JobId = "7d0c7a55-0d3c-4a43-9b59-4b2f0f6c1d11",
            Command = "/bin/true",
            State = JobWorker.Protocol.V1.JobState.Exited,
            LogBytes = 1 << 20,
            LogTruncated = true,
            LogDroppedBytes = 3 << 20,
            LogError = "No space left on device (ENOSPC)",
        };

        var text = JobTable.Describe(job, DateTimeOffset.UtcNow);

        var output = text.Split('\n').Single(line => line.StartsWith("Output:", StringComparison.Ordinal));
        Assert.Equal("1 MiB (log truncated: No space left on device (ENOSPC); 3 MiB dropped)", output["Output:".Length..].TrimStart());
    }
}
