using JobWorker.Cli.Parsing;

namespace JobWorker.Cli.Tests;

public sealed class ParserTests
{
    [Theory]
    [InlineData("1", 1L)]
    [InlineData("1048576", 1048576L)]
    [InlineData("512b", 512L)]
    [InlineData("1K", 1024L)]
    [InlineData("1k", 1024L)]
    [InlineData("1KiB", 1024L)]
    [InlineData("1kb", 1024L)]
    [InlineData("256M", 256L << 20)]
    [InlineData("256Mi", 256L << 20)]
    [InlineData("1.5G", 3L << 29)]
    [InlineData("2 GiB", 2L << 30)]
    [InlineData("1T", 1L << 40)]
    [InlineData(" 64m ", 64L << 20)]
    public void SizeTryParse_ValidSize_ReturnsBytes(string text, long expected)
    {
        Assert.True(SizeParser.TryParse(text, out var bytes, out var error), error);
        Assert.Equal(expected, bytes);
    }

    [Theory]
    [InlineData("")]
    [InlineData("12Q")]
    [InlineData("M")]
    [InlineData("-5M")]
    [InlineData("0")]
    [InlineData("0M")]
    [InlineData("abc")]
    [InlineData("1.2.3M")]
    [InlineData("99999999999T")]
    [InlineData("1e3")]
    public void SizeTryParse_Invalid_ReturnsErrorNamingTheValue(string text)
    {
        Assert.False(SizeParser.TryParse(text, out _, out var error));
        Assert.False(string.IsNullOrWhiteSpace(error));
        if (text.Trim().Length > 0)
        {
            Assert.Contains(text, error, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("10M/s", 10L << 20)]
    [InlineData("10M", 10L << 20)]
    [InlineData("1024/s", 1024L)]
    public void SizeTryParseRate_WithOrWithoutPerSecond_ReturnsBytesPerSecond(string text, long expected)
    {
        Assert.True(SizeParser.TryParseRate(text, out var rate, out var error), error);
        Assert.Equal(expected, rate);
    }

    [Theory]
    [InlineData("5s", 5_000)]
    [InlineData("5", 5_000)]
    [InlineData("0", 0)]
    [InlineData("0s", 0)]
    [InlineData("500ms", 500)]
    [InlineData("1.5s", 1_500)]
    [InlineData("1m30s", 90_000)]
    [InlineData("2h", 7_200_000)]
    [InlineData("1d", 86_400_000)]
    [InlineData("1h1m1s1ms", 3_661_001)]
    public void DurationTryParse_Valid_ReturnsDuration(string text, long expectedMs)
    {
        Assert.True(DurationParser.TryParse(text, out var duration, out var error), error);
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs), duration);
    }

    [Theory]
    [InlineData("")]
    [InlineData("5x")]
    [InlineData("-5s")]
    [InlineData("s")]
    [InlineData("5s5")]
    [InlineData("1..2s")]
    [InlineData("99999999999999d")]
    public void DurationTryParse_Invalid_ReturnsError(string text)
    {
        Assert.False(DurationParser.TryParse(text, out _, out var error));
        Assert.False(string.IsNullOrWhiteSpace(error));
    }

    [Theory]
    [InlineData("pid", true, false, false, false, false)]
    [InlineData("pid,mount,net", true, true, true, false, false)]
    [InlineData("network, mnt", false, true, true, false, false)]
    [InlineData("ipc,uts", false, false, false, true, true)]
    [InlineData("pid,mount,ipc,uts", true, true, false, true, true)]
    [InlineData("all", true, true, true, true, true)]
    [InlineData("none", false, false, false, false, false)]
    public void IsolationTryParse_List_SetsNamespaces(string text, bool pid, bool mount, bool net, bool ipc, bool uts)
    {
        Assert.True(IsolationSpec.TryParse(text, out var spec, out var error), error);
        Assert.Equal(new IsolationSpec(pid, mount, net, ipc, uts), spec);
    }

    [Theory]
    [InlineData("")]
    [InlineData("pid,user")]
    [InlineData("cgroup")]
    public void IsolationTryParse_UnknownNamespace_ReturnsError(string text)
    {
        Assert.False(IsolationSpec.TryParse(text, out _, out var error));
        Assert.False(string.IsNullOrWhiteSpace(error));
    }

    [Theory]
    [InlineData("A=1", "A", "1")]
    [InlineData("A=", "A", "")]
    [InlineData("A=b=c", "A", "b=c")]
    public void KeyValueTryParse_SplitsAtFirstEquals(string text, string key, string value)
    {
        Assert.True(KeyValueParser.TryParse(text, "KEY=VALUE", out var k, out var v, out var error), error);
        Assert.Equal(key, k);
        Assert.Equal(value, v);
    }

    [Theory]
    [InlineData("A")]
    [InlineData("=1")]
    [InlineData("")]
    public void KeyValueTryParse_NoKey_ReturnsError(string text)
    {
        Assert.False(KeyValueParser.TryParse(text, "KEY=VALUE", out _, out _, out var error));
        Assert.Contains("KEY=VALUE", error, StringComparison.Ordinal);
    }
}
