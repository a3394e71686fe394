using System.Globalization;
using JobWorker.Core.Jobs;

namespace JobWorker.Server.Configuration;

/// <summary>
/// Which Unix account each certificate user's jobs run as: the <c>JobWorker:Identity</c> section (docs/operations.md,
/// "Job identities"). By default every user gets a uid and gid of their own from <see cref="IdRange"/>.
/// </summary>
public sealed class IdentityOptions
{
    public const string Section = ServerOptions.Section + ":Identity";

    /// <summary>
    /// <c>PerOwner</c> (the default): a uid of each user's own. <c>SharedAccount</c>: every job runs as
    /// <see cref="ServerOptions.JobUser"/>/<see cref="ServerOptions.JobGroup"/>, and the jobs of all users can signal
    /// each other.
    /// </summary>
    public JobIdentityMode Mode { get; set; } = JobIdentityMode.PerOwner;

    /// <summary>The ids (uid = gid) allocated to users, <c>FIRST-LAST</c>; no account or group may use one.</summary>
    public string IdRange { get; set; } = $"{JobIdentityOptions.DefaultFirstId}-{JobIdentityOptions.DefaultLastId}";

    /// <summary>Users that run as an existing account instead: certificate user → account name.</summary>
    public Dictionary<string, string> Accounts { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Where each user's private directory (mode 0700, the default working directory) is created.</summary>
    public string UserDirectoryRoot { get; set; } = new JobIdentityOptions().UserDirectoryRoot;

    /// <summary>The settings for the runner; call after <see cref="Validate"/> found no problem.</summary>
    public JobIdentityOptions ToJobIdentityOptions()
    {
        var (first, last) = ParseRange(IdRange) ?? throw new InvalidOperationException($"{Section}:IdRange '{IdRange}' is not valid; call Validate first.");
        return new JobIdentityOptions
        {
            Mode = Mode,
            FirstId = first,
            LastId = last,
            Accounts = new Dictionary<string, string>(Accounts, StringComparer.Ordinal),
            UserDirectoryRoot = UserDirectoryRoot,
        };
    }

    /// <summary>
    /// Adds every problem that needs no look at the host; the accounts and the directory are checked when the
    /// runner starts (<see cref="JobRunner.Create"/>), before the server listens.
    /// </summary>
    public void Validate(List<string> errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        if (!Enum.IsDefined(Mode))
        {
            errors.Add($"{Section}:Mode must be PerOwner or SharedAccount");
        }

        if (ParseRange(IdRange) is not { } range)
        {
            errors.Add($"{Section}:IdRange '{IdRange}' is not a range FIRST-LAST of ids (for example {JobIdentityOptions.DefaultFirstId}-{JobIdentityOptions.DefaultLastId})");
        }
        else if (range.First > range.Last)
        {
            errors.Add($"{Section}:IdRange '{IdRange}' is empty: {range.First} is above {range.Last}");
        }
        else if (range.First == 0)
        {
            errors.Add($"{Section}:IdRange '{IdRange}' includes uid 0 (root); choose ids no account uses, for example {JobIdentityOptions.DefaultFirstId}-{JobIdentityOptions.DefaultLastId}");
        }

        if (string.IsNullOrWhiteSpace(UserDirectoryRoot) || !Path.IsPathFullyQualified(UserDirectoryRoot))
        {
            errors.Add($"{Section}:UserDirectoryRoot must be an absolute path, not '{UserDirectoryRoot}'");
        }
    }

    private static (uint First, uint Last)? ParseRange(string? text)
    {
        var parts = text?.Split('-') ?? [];
        return parts.Length == 2
            && uint.TryParse(parts[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var first)
            && uint.TryParse(parts[1].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var last)
            ? (first, last)
            : null;
    }
}
