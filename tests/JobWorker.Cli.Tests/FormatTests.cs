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
}
