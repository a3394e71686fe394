namespace JobWorker.Pki;

/// <summary>The roles a client certificate can carry in its subject's organizational unit (OU).</summary>
public static class Roles
{
    /// <summary>May see and control every job.</summary>
    public const string Admin = "admin";

    /// <summary>May start jobs and see and control only their own.</summary>
    public const string User = "user";

    /// <summary>Whether <paramref name="role"/> is one of the known roles (exact, lower case).</summary>
    public static bool IsKnown(string? role) => role is Admin or User;
}
