using System.Diagnostics.CodeAnalysis;

namespace JobWorker.Cli.Parsing;

/// <summary>Splits <c>KEY=VALUE</c> at the first <c>=</c>; the value may itself contain <c>=</c>.</summary>
internal static class KeyValueParser
{
    public static bool TryParse(string? text, string what, out string key, out string value, [NotNullWhen(false)] out string? error)
    {
        key = string.Empty;
        value = string.Empty;
        var eq = text?.IndexOf('=', StringComparison.Ordinal) ?? -1;
        if (text is null || eq <= 0)
        {
            error = $"'{text}' is not {what}";
            return false;
        }

        key = text[..eq];
        value = text[(eq + 1)..];
        error = null;
        return true;
    }
}
