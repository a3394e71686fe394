using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace JobWorker.Cli.Parsing;

/// <summary>
/// Parses Go-style durations (<c>5s</c>, <c>500ms</c>, <c>1m30s</c>, <c>2h</c>); a bare number means seconds.
/// </summary>
internal static class DurationParser
{
    public static bool TryParse(string? text, out TimeSpan duration, [NotNullWhen(false)] out string? error)
    {
        duration = TimeSpan.Zero;
        var s = text?.Trim().ToLowerInvariant() ?? string.Empty;
        var invalid = $"'{text}' is not a duration: use for example 5s, 500ms, 1m30s or 2h";
        if (s.Length == 0)
        {
            error = invalid;
            return false;
        }

        if (decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var bareSeconds))
        {
            return TryMake(bareSeconds * 1000m, text, out duration, out error);
        }

        decimal totalMs = 0;
        var i = 0;
        while (i < s.Length)
        {
            var start = i;
            while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.'))
            {
                i++;
            }

            if (i == start || !decimal.TryParse(s.AsSpan(start, i - start), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
            {
                error = invalid;
                return false;
            }

            var unitStart = i;
            while (i < s.Length && char.IsAsciiLetter(s[i]))
            {
                i++;
            }

            decimal? unitMs = s[unitStart..i] switch
            {
                "ms" => 1m,
                "s" => 1000m,
                "m" => 60_000m,
                "h" => 3_600_000m,
                "d" => 86_400_000m,
                _ => null,
            };
            if (unitMs is null)
            {
                error = invalid;
                return false;
            }

            totalMs += value * unitMs.Value;
            if (totalMs > (decimal)TimeSpan.MaxValue.TotalMilliseconds / 2)
            {
                error = $"'{text}' is too long";
                return false;
            }
        }

        return TryMake(totalMs, text, out duration, out error);
    }

    private static bool TryMake(decimal milliseconds, string? text, out TimeSpan duration, [NotNullWhen(false)] out string? error)
    {
        duration = TimeSpan.Zero;
        if (milliseconds > (decimal)TimeSpan.MaxValue.TotalMilliseconds / 2)
        {
            error = $"'{text}' is too long";
            return false;
        }

        duration = TimeSpan.FromTicks((long)(milliseconds * TimeSpan.TicksPerMillisecond));
        error = null;
        return true;
    }
}
