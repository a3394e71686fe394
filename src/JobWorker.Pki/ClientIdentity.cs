using System.Security.Cryptography.X509Certificates;

namespace JobWorker.Pki;

/// <summary>
/// Who a client certificate belongs to: the subject's common name (CN) is the user, its single organizational
/// unit (OU) is the role. Both the issuing code and the server's reading code use this one definition.
/// </summary>
/// <param name="User">The user name (1-64 characters: letters, digits, '.', '_', '-'; not starting with '.' or '-').</param>
/// <param name="Role">The role: <see cref="Roles.Admin"/> or <see cref="Roles.User"/>.</param>
public sealed record ClientIdentity(string User, string Role)
{
    private const string CommonNameOid = "2.5.4.3";
    private const string OrganizationalUnitOid = "2.5.4.11";

    /// <summary>The longest accepted user name.</summary>
    public const int MaxUserLength = 64;

    /// <summary>Checks a user name and role; returns an error message naming the problem, or null when valid.</summary>
    public static string? Validate(string? user, string? role)
    {
        if (string.IsNullOrEmpty(user))
        {
            return "user name is empty";
        }

        if (user.Length > MaxUserLength)
        {
            return $"user name '{user[..16]}…' is longer than {MaxUserLength} characters";
        }

        // The name becomes a file name and a log field: keep it to a portable, unambiguous set.
        foreach (var c in user)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                return $"user name '{user}' contains '{c}'; use letters, digits, '.', '_' or '-'";
            }
        }

        if (user[0] is '.' or '-')
        {
            return $"user name '{user}' must not start with '{user[0]}'";
        }

        if (!Roles.IsKnown(role))
        {
            return $"role '{role}' is unknown; use '{Roles.Admin}' or '{Roles.User}'";
        }

        return null;
    }

    /// <summary>Creates an identity after checking it.</summary>
    /// <exception cref="ArgumentException">The user name or role is invalid.</exception>
    public static ClientIdentity Create(string user, string role)
    {
        var error = Validate(user, role);
        return error is null ? new ClientIdentity(user, role) : throw new ArgumentException(error, nameof(user));
    }

    /// <summary>
    /// Reads the identity from a certificate's subject: exactly one CN and exactly one OU, both valid.
    /// The certificate must already have been verified; this only reads names.
    /// </summary>
    public static bool TryRead(X509Certificate2 certificate, out ClientIdentity? identity, out string? error)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        identity = null;
        string? cn = null;
        string? ou = null;
        int cnCount = 0, ouCount = 0;
        foreach (var rdn in certificate.SubjectName.EnumerateRelativeDistinguishedNames())
        {
            if (rdn.HasMultipleElements)
            {
                // A multi-valued RDN could smuggle a second CN/OU past a naive reader: refuse it.
                error = "certificate subject has a multi-valued RDN";
                return false;
            }

            switch (rdn.GetSingleElementType().Value)
            {
                case CommonNameOid:
                    cn = rdn.GetSingleElementValue();
                    cnCount++;
                    break;
                case OrganizationalUnitOid:
                    ou = rdn.GetSingleElementValue();
                    ouCount++;
                    break;
            }
        }

        if (cnCount != 1 || ouCount != 1)
        {
            error = $"certificate subject must have exactly one CN and one OU (has {cnCount} CN, {ouCount} OU)";
            return false;
        }

        error = Validate(cn, ou);
        if (error is not null)
        {
            return false;
        }

        identity = new ClientIdentity(cn!, ou!);
        return true;
    }
}
