namespace JobWorker.Core.Jobs;

/// <summary>Which Unix account a job runs as.</summary>
public enum JobIdentityMode
{
    /// <summary>
    /// Every owner (<see cref="JobSpec.Owner"/>) gets a uid and gid of their own, allocated once from
    /// <see cref="JobIdentityOptions.FirstId"/>..<see cref="JobIdentityOptions.LastId"/> and kept in the state directory,
    /// or the existing account <see cref="JobIdentityOptions.Accounts"/> maps it to. Jobs of two owners cannot signal,
    /// trace or read each other. A job without an owner is refused.
    /// </summary>
    PerOwner,

    /// <summary>Every job runs as <see cref="JobRunnerOptions.User"/> and <see cref="JobRunnerOptions.Group"/>: the jobs of all owners can signal each other.</summary>
    SharedAccount,
}

/// <summary>
/// How jobs get their Unix identity (docs/design-identity.md): by default each owner has a uid of their own, like
/// systemd's <c>DynamicUser=</c>, and a private directory that is the default working directory of their jobs.
/// </summary>
public sealed record JobIdentityOptions
{
    /// <summary>The first uid of systemd's range for dynamic users.</summary>
    public const uint DefaultFirstId = 61184;

    /// <summary>The last uid of systemd's range for dynamic users.</summary>
    public const uint DefaultLastId = 65519;

    /// <summary>Per-owner accounts (the default) or one shared account.</summary>
    public JobIdentityMode Mode { get; init; } = JobIdentityMode.PerOwner;

    /// <summary>
    /// The first id (uid and gid, the same number) that may be allocated to an owner. No account or group in
    /// <c>/etc/passwd</c> or <c>/etc/group</c> may use an id in the range. Default 61184.
    /// </summary>
    public uint FirstId { get; init; } = DefaultFirstId;

    /// <summary>The last id that may be allocated. Default 65519.</summary>
    public uint LastId { get; init; } = DefaultLastId;

    /// <summary>
    /// Owners that run as an existing account instead of an allocated id: owner name → user name (its primary
    /// group from <c>/etc/passwd</c>). Each account may be named once, and never root.
    /// </summary>
    public IReadOnlyDictionary<string, string> Accounts { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// Where each owner's private directory (<c>&lt;root&gt;/&lt;owner&gt;</c>, mode 0700, owned by the owner's uid) is
    /// created: the working directory and <c>HOME</c> of jobs that do not choose one. Created root-owned 0755 if
    /// missing; it must not be writable by others, must be reachable by every uid, and may not be under
    /// <c>/tmp</c> (mount-isolated jobs get a private one) or the state directory (hidden from them). Default
    /// <c>/var/lib/jobworker-users</c>.
    /// </summary>
    public string UserDirectoryRoot { get; init; } = "/var/lib/jobworker-users";
}
