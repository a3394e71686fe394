using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace JobWorker.Cli.Parsing;

/// <summary>
/// Parses human sizes such as <c>256M</c>, <c>1.5GiB</c>, <c>512k</c> or <c>1048576</c>.
/// Every unit is binary (K = 1024), as in docker and systemd, so <c>--memory 256M</c> means 256 MiB.
/// A rate accepts the same syntax with an optional <c>/s</c> suffix (<c>10M/s</c>).
/// </summary>
internal static class SizeParser
{
    private static readonly (string Suffix, long Multiplier)[] Units =
    [
        ("kib", 1L << 10), ("kb", 1L << 10), ("ki", 1L << 10), ("k", 1L << 10),
        ("mib", 1L << 20), ("mb", 1L << 20), ("mi", 1L << 20), ("m", 1L << 20),
        ("gib", 1L << 30), ("gb", 1L << 30), ("gi", 1L << 30), ("g", 1L << 30),
        ("tib", 1L << 40), ("tb", 1L << 40), ("ti", 1L << 40), ("t", 1L << 40),
        ("b", 1L),
    ];

    public static bool TryParse(string? text, out long bytes, [NotNullWhen(false)] out string? error)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "a size is required (for example 256M, 1G or 1048576)";
            return false;
        }

        var s = text.Trim().ToLowerInvariant();
        var number = s;
        long multiplier = 1;
        foreach (var (suffix, unitMultiplier) in Units)
        {
            if (s.EndsWith(suffix, StringComparison.Ordinal))
            {
                number = s[..^suffix.Length].TrimEnd();
                multiplier = unitMultiplier;
                break;
            }
        }

        if (number.Length == 0 || !char.IsAsciiDigit(number[0]) && number[0] != '.'
            || !decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
        {
            error = $"'{text}' is not a size: use a number with an optional unit K, M, G or T (for example 256M)";
            return false;
        }

        decimal total;
        try
        {
            total = decimal.Round(value * multiplier, MidpointRounding.AwayFromZero);
        }
        catch (OverflowException)
        {
            total = decimal.MaxValue;
        }

        if (total > long.MaxValue)
        {
            error = $"'{text}' is too large";
            return false;
        }

        if (total <= 0)
        {
            error = $"'{text}' must be greater than zero";
            return false;
        }

        bytes = (long)total;
        error = null;
        return true;
    }

    public static bool TryParseRate(string? text, out long bytesPerSecond, [NotNullWhen(false)] out string? error)
    {
        var s = text?.Trim() ?? string.Empty;
        if (s.EndsWith("/s", StringComparison.OrdinalIgnoreCase))
        {
            s = s[..^2];
        }

        return TryParse(s, out bytesPerSecond, out error);
    }
}
