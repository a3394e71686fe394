using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using JobWorker.Cli.Parsing;

namespace JobWorker.Cli.Commands;

/// <summary>
/// Options whose values are validated while parsing, so a bad value is a usage error (exit 2) with a
/// message that names the option and shows a valid example.
/// </summary>
internal static class OptionFactory
{
    public static Option<long?> Size(string name, string description) => new(name)
    {
        Description = description,
        HelpName = "SIZE",
        CustomParser = r => Parse(r, name, (string t, out long v, out string? e) => SizeParser.TryParse(t, out v, out e)),
    };

    /// <summary>A duration option; <paramref name="check"/> says what is wrong with a valid duration ("must be …"), or null.</summary>
    public static Option<TimeSpan?> Duration(string name, string description, Func<TimeSpan, string?>? check = null) => new(name)
    {
        Description = description,
        HelpName = "DURATION",
        CustomParser = r => Parse(r, name, (string t, out TimeSpan v, out string? e) =>
        {
            if (!DurationParser.TryParse(t, out v, out e))
            {
                return false;
            }

            e = check?.Invoke(v) is { } problem ? $"'{t}' {problem}" : null;
            return e is null;
        }),
    };

    public static Option<long?> PositiveInteger(string name, string description, string helpName = "N", long min = 1, long max = long.MaxValue) => new(name)
    {
        Description = description,
        HelpName = helpName,
        CustomParser = r => Parse(r, name, (string t, out long v, out string? e) =>
        {
            if (long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out v) && v >= min && v <= max)
            {
                e = null;
                return true;
            }

            e = max == long.MaxValue ? $"'{t}' is not a whole number ≥ {min}" : $"'{t}' is not a whole number from {min} to {max}";
            return false;
        }),
    };

    public static Option<double?> Cpu(string name, string description) => new(name)
    {
        Description = description,
        HelpName = "CORES",
        CustomParser = r => Parse(r, name, (string t, out double v, out string? e) =>
        {
            if (double.TryParse(t, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out v) && v > 0 && double.IsFinite(v))
            {
                e = null;
                return true;
            }

            e = $"'{t}' is not a number of CPU cores greater than 0 (for example 0.5 or 2)";
            return false;
        }),
    };

    /// <summary>A repeatable <c>DEV=VALUE</c> option; the value is a rate (bytes/s) or a plain count.</summary>
    public static Option<IoLimitSpec[]> DeviceLimit(string name, string description, bool isRate) => new(name)
    {
        Description = description,
        HelpName = isRate ? "DEV=RATE" : "DEV=N",
        Arity = ArgumentArity.ZeroOrMore,
        AllowMultipleArgumentsPerToken = false,
        DefaultValueFactory = _ => [],
        CustomParser = r =>
        {
            var result = new List<IoLimitSpec>();
            foreach (var token in r.Tokens)
            {
                var example = isRate ? "/dev/sda=10M" : "/dev/sda=100";
                if (!KeyValueParser.TryParse(token.Value, $"DEV={(isRate ? "RATE" : "N")} (for example {example})", out var dev, out var value, out var error))
                {
                    r.AddError($"{name}: {error}");
                    return [];
                }

                long number;
                if (isRate)
                {
                    if (!SizeParser.TryParseRate(value, out number, out error))
                    {
                        r.AddError($"{name}: {error}");
                        return [];
                    }
                }
                else if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out number) || number <= 0)
                {
                    r.AddError($"{name}: '{value}' is not a whole number > 0 (for example {example})");
                    return [];
                }

                result.Add(new IoLimitSpec(dev, number));
            }

            return [.. result];
        },
    };

    private delegate bool TryParser<T>(string text, out T value, out string? error);

    private static T? Parse<T>(ArgumentResult result, string name, TryParser<T> parser)
        where T : struct
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : string.Empty;
        if (parser(text, out var value, out var error))
        {
            return value;
        }

        result.AddError($"{name}: {error}");
        return null;
    }
}
