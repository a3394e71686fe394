using System.Globalization;
using JobWorker.Core.Jobs;

namespace JobWorker.Core.Processes;

/// <summary>The credentials a job runs with, resolved from names or numeric ids.</summary>
internal sealed record UserAccount(uint Uid, uint Gid, string Name, string Home)
{
    /// <summary>
    /// Resolves a user and group (names or ids) like getpwnam/getgrnam for files-backed accounts.
    /// Parsing <c>/etc/passwd</c> and <c>/etc/group</c> avoids glibc NSS modules being loaded into the server.
    /// </summary>
    /// <exception cref="JobStartException">With <see cref="JobStartFailure.UserNotFound"/>.</exception>
    public static UserAccount Resolve(string user, string group, string passwdPath = "/etc/passwd", string groupPath = "/etc/group")
    {
        var passwd = ReadDatabase(passwdPath);
        string[]? userEntry = null;
        if (uint.TryParse(user, NumberStyles.None, CultureInfo.InvariantCulture, out var uid))
        {
            userEntry = passwd.FirstOrDefault(e => e.Length >= 7 && e[2] == user);
        }
        else
        {
            userEntry = passwd.FirstOrDefault(e => e.Length >= 7 && e[0] == user);
            if (userEntry is null || !uint.TryParse(userEntry[2], NumberStyles.None, CultureInfo.InvariantCulture, out uid))
            {
                throw new JobStartException(
                    JobStartFailure.UserNotFound,
                    $"The job user '{user}' does not exist in {passwdPath}. Configure JobRunnerOptions.User with an existing user name or a numeric uid.");
            }
        }

        uint gid;
        if (!uint.TryParse(group, NumberStyles.None, CultureInfo.InvariantCulture, out gid))
        {
            var groupEntry = ReadDatabase(groupPath).FirstOrDefault(e => e.Length >= 3 && e[0] == group);
            if (groupEntry is null || !uint.TryParse(groupEntry[2], NumberStyles.None, CultureInfo.InvariantCulture, out gid))
            {
                throw new JobStartException(
                    JobStartFailure.UserNotFound,
                    $"The job group '{group}' does not exist in {groupPath}. Configure JobRunnerOptions.Group with an existing group name or a numeric gid.");
            }
        }

        var name = userEntry?[0] ?? user;
        var home = userEntry is { Length: >= 7 } && userEntry[5].StartsWith('/') ? userEntry[5] : "/";
        return new UserAccount(uid, gid, name, home);
    }

    private static List<string[]> ReadDatabase(string path)
    {
        var entries = new List<string[]>();
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            entries.Add(line.Split(':'));
        }

        return entries;
    }
}
