namespace JobWorker.Core.Jobs;

/// <summary>Checks a <see cref="JobSpec"/> before anything is created; every message names the field.</summary>
internal static class JobSpecValidator
{
    private const string Param = "spec";

    public static void Validate(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (string.IsNullOrWhiteSpace(spec.Command))
        {
            throw JobSpecValidator.Invalid("Command is empty; give an absolute path (/bin/ls) or a name looked up in PATH (ls).");
        }

        NoNul(spec.Command, "Command");
        if (spec.Command.Contains('/') && !spec.Command.StartsWith('/'))
        {
            throw JobSpecValidator.Invalid($"Command '{spec.Command}' is a relative path; give an absolute path or a bare name looked up in PATH.");
        }

        if (spec.Arguments is null)
        {
            throw JobSpecValidator.Invalid("Arguments is null; use an empty list for no arguments.");
        }

        for (var i = 0; i < spec.Arguments.Count; i++)
        {
            if (spec.Arguments[i] is null)
            {
                throw JobSpecValidator.Invalid($"Arguments[{i}] is null.");
            }

            NoNul(spec.Arguments[i], $"Arguments[{i}]");
        }

        if (spec.Environment is null)
        {
            throw JobSpecValidator.Invalid("Environment is null; use an empty dictionary for none.");
        }

        foreach (var (key, value) in spec.Environment)
        {
            if (string.IsNullOrEmpty(key) || key.Contains('='))
            {
                throw JobSpecValidator.Invalid($"Environment variable name '{key}' is empty or contains '='.");
            }

            NoNul(key, $"Environment name '{key}'");
            if (value is null)
            {
                throw JobSpecValidator.Invalid($"Environment['{key}'] is null.");
            }

            NoNul(value, $"Environment['{key}']");
        }

        if (spec.WorkingDirectory is not null)
        {
            NoNul(spec.WorkingDirectory, "WorkingDirectory");
            if (!spec.WorkingDirectory.StartsWith('/'))
            {
                throw JobSpecValidator.Invalid($"WorkingDirectory '{spec.WorkingDirectory}' must be an absolute path.");
            }
        }

        if (spec.Limits is null)
        {
            throw JobSpecValidator.Invalid("Limits is null; use ResourceLimits.None.");
        }

        if (spec.Limits.Io is null)
        {
            throw JobSpecValidator.Invalid("Limits.Io is null; use an empty list.");
        }

        if (spec.Isolation is { } isolation && (isolation & ~JobIsolation.All) != 0)
        {
            throw JobSpecValidator.Invalid($"Isolation {isolation} has unknown flags.");
        }
    }

    /// <summary>An invalid-spec error; <paramref name="paramName"/> is the <see cref="JobRunner.Start"/> parameter.</summary>
    internal static ArgumentException Invalid(string message, Exception? inner = null, string paramName = Param)
        => new(message, paramName, inner);

    private static void NoNul(string value, string field)
    {
        if (value.Contains('\0'))
        {
            throw JobSpecValidator.Invalid($"{field} contains a NUL character, which cannot be passed to a program.");
        }
    }
}
