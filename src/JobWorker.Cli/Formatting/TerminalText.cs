using System.Globalization;
using System.Text;

namespace JobWorker.Cli.Formatting;

/// <summary>
/// Text from a job's command line, the server or our own arguments, made safe for a terminal: a job's argv could
/// otherwise clear an admin's screen (<c>ESC [2J</c>), move the cursor (<c>CR</c>) or paint fake rows into
/// <c>worker list</c> (<c>LF</c>). Every C0 control, DEL, every C1 control (a terminal may read U+009B as CSI) and
/// the Unicode characters that break lines or reorder text (U+2028, U+2029, bidirectional controls) become a visible
/// escape. <c>--json</c> and <c>worker logs</c> never pass through here.
/// </summary>
internal static class TerminalText
{
    /// <summary>
    /// Escapes as bash's <c>$'…'</c> reads them: <c>\e \n \r \t \a \b \f \v</c>, <c>\xHH</c> for the other ASCII
    /// controls, <c>\uHHHH</c> above. Backslashes stay as they are; with <paramref name="keepLineFeeds"/> so do
    /// line feeds (multi-line diagnostics).
    /// </summary>
    public static string Escape(string text, bool keepLineFeeds = false)
    {
        var first = IndexToEscape(text, keepLineFeeds);
        if (first < 0)
        {
            return text;
        }

        var sb = new StringBuilder(text.Length + 16);
        sb.Append(text, 0, first);
        for (var i = first; i < text.Length; i++)
        {
            var c = text[i];
            if (NeedsEscape(c) && !(keepLineFeeds && c == '\n'))
            {
                AppendEscape(sb, c);
            }
            else
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }

    /// <summary>Whether <paramref name="c"/> would be shown as an escape.</summary>
    public static bool NeedsEscape(char c)
        => c < '\u0020'
            || c is >= '\u007f' and <= '\u009f'
            || c is '\u2028' or '\u2029' or '\u061c' or '\u200e' or '\u200f'
            || c is >= '\u202a' and <= '\u202e'
            || c is >= '\u2066' and <= '\u2069';

    /// <summary>Appends the escape of one character (see <see cref="Escape"/>).</summary>
    public static void AppendEscape(StringBuilder sb, char c)
    {
        _ = c switch
        {
            '\u001b' => sb.Append("\\e"),
            '\n' => sb.Append("\\n"),
            '\r' => sb.Append("\\r"),
            '\t' => sb.Append("\\t"),
            '\a' => sb.Append("\\a"),
            '\b' => sb.Append("\\b"),
            '\f' => sb.Append("\\f"),
            '\v' => sb.Append("\\v"),
            < '\u0080' => sb.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}"),
            _ => sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"),
        };
    }

    private static int IndexToEscape(string text, bool keepLineFeeds)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (NeedsEscape(text[i]) && !(keepLineFeeds && text[i] == '\n'))
            {
                return i;
            }
        }

        return -1;
    }
}
