namespace JobWorker.Core.Processes;

/// <summary>Turns a command into the executables to try, like <c>execvp</c> does with the job's PATH.</summary>
internal static class ExecutableSearch
{
    public static List<string> Candidates(string command, string? path)
    {
        if (command.Contains('/'))
        {
            return [command];
        }

        var candidates = new List<string>();
        foreach (var dir in (path ?? string.Empty).Split(':'))
        {
            // Relative PATH entries (and the empty one, meaning ".") would depend on the job's working
            // directory: skip them, a job's PATH should not make the server run files from an arbitrary place.
            if (dir.StartsWith('/'))
            {
                candidates.Add(dir.EndsWith('/') ? dir + command : dir + "/" + command);
            }
        }

        return candidates;
    }
}
