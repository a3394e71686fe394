using System.Collections.Frozen;
using JobWorker.Pki;

namespace JobWorker.Server.Security;

/// <summary>
/// Who may do what: the whole policy is the table below (role × operation × ownership). Anything not in the
/// table is denied, including unknown roles. The server turns a denial on an existing job into NotFound, so a
/// user cannot tell another user's job from a missing id.
/// </summary>
public static class AuthorizationPolicy
{
    private static readonly FrozenSet<(string Role, JobOperation Operation, Ownership Ownership)> Allowed = new[]
    {
        // A user starts jobs and sees, stops, streams and removes only their own.
        (Roles.User, JobOperation.Start, Ownership.NoJob),
        (Roles.User, JobOperation.List, Ownership.Own),
        (Roles.User, JobOperation.Get, Ownership.Own),
        (Roles.User, JobOperation.Stop, Ownership.Own),
        (Roles.User, JobOperation.StreamOutput, Ownership.Own),
        (Roles.User, JobOperation.Remove, Ownership.Own),

        // An admin does everything on every job.
        (Roles.Admin, JobOperation.Start, Ownership.NoJob),
        (Roles.Admin, JobOperation.List, Ownership.Own),
        (Roles.Admin, JobOperation.List, Ownership.Other),
        (Roles.Admin, JobOperation.Get, Ownership.Own),
        (Roles.Admin, JobOperation.Get, Ownership.Other),
        (Roles.Admin, JobOperation.Stop, Ownership.Own),
        (Roles.Admin, JobOperation.Stop, Ownership.Other),
        (Roles.Admin, JobOperation.StreamOutput, Ownership.Own),
        (Roles.Admin, JobOperation.StreamOutput, Ownership.Other),
        (Roles.Admin, JobOperation.Remove, Ownership.Own),
        (Roles.Admin, JobOperation.Remove, Ownership.Other),
    }.ToFrozenSet();

    /// <summary>Whether <paramref name="caller"/> may perform <paramref name="operation"/> on a job owned by <paramref name="jobOwner"/>.</summary>
    /// <param name="caller">The verified caller.</param>
    /// <param name="operation">The operation.</param>
    /// <param name="jobOwner">The job's owner, or null for <see cref="JobOperation.Start"/> (no job yet).</param>
    public static bool IsAllowed(ClientIdentity caller, JobOperation operation, string? jobOwner)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var ownership = operation == JobOperation.Start
            ? Ownership.NoJob
            : string.Equals(jobOwner, caller.User, StringComparison.Ordinal) ? Ownership.Own : Ownership.Other;
        return IsAllowed(caller.Role, operation, ownership);
    }

    /// <summary>The table lookup itself.</summary>
    public static bool IsAllowed(string role, JobOperation operation, Ownership ownership)
        => Allowed.Contains((role, operation, ownership));
}
