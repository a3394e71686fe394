using System.Globalization;
using System.Text;

namespace JobWorker.Cli.Formatting;

/// <summary>Sizes and durations in human units for the table output (JSON output keeps raw numbers).</summary>
internal static class HumanFormat
{
    private static readonly string[] SizeUnits = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

    public static string Bytes(long bytes)
    {
        if (bytes < 1024)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{bytes} B");
        }

        double value = bytes;
        var unit = 0;
        while (value >= 1024 && unit < SizeUnits.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        var format = value >= 100 ? "0" : value >= 10 ? "0.#" : "0.##";
        return value.ToString(format, CultureInfo.InvariantCulture) + " " + SizeUnits[unit];
    }

    public static string Duration(TimeSpan duration)
    {
        if (duration < TimeSpan.Zero)
        {
            duration = TimeSpan.Zero;
        }

        if (duration < TimeSpan.FromSeconds(1))
        {
            return string.Create(CultureInfo.InvariantCulture, $"{(int)duration.TotalMilliseconds}ms");
        }

        if (duration < TimeSpan.FromMinutes(1))
        {
            return duration.TotalSeconds.ToString(duration.TotalSeconds >= 10 ? "0.#" : "0.##", CultureInfo.InvariantCulture) + "s";
        }

        var sb = new StringBuilder();
        if (duration.Days > 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{duration.Days}d{duration.Hours}h");
        }
        else if (duration.Hours > 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{duration.Hours}h{duration.Minutes:00}m");
        }
        else
        {
            sb.Append(CultureInfo.InvariantCulture, $"{duration.Minutes}m{duration.Seconds:00}s");
        }

        return sb.ToString();
    }

    /// <summary>
    /// Quotes a command line the way a POSIX shell would need it, for display only. An argument with a control
    /// character is shown in bash's <c>$'…'</c> form (<c>$'\e[2J'</c>), so nothing in it reaches the terminal raw and
    /// the line can still be pasted into bash.
    /// </summary>
    public static string CommandLine(string command, IEnumerable<string> args)
    {
        var sb = new StringBuilder(ShellQuote(command));
        foreach (var arg in args)
        {
            sb.Append(' ').Append(ShellQuote(arg));
        }

        return sb.ToString();
    }

    private static string ShellQuote(string s)
    {
        if (s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,+@%".Contains(c, StringComparison.Ordinal)))
        {
            return s;
        }

        if (s.Any(TerminalText.NeedsEscape))
        {
            var sb = new StringBuilder("$'", s.Length + 8);
            foreach (var c in s)
            {
                if (TerminalText.NeedsEscape(c))
                {
                    TerminalText.AppendEscape(sb, c);
                }
                else
                {
                    sb.Append(c is '\\' or '\'' ? "\\" + c : c.ToString());
                }
            }

            return sb.Append('\'').ToString();
        }

        return "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }
}
