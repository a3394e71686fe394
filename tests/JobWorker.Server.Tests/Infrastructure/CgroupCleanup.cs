namespace JobWorker.Server.Tests.Infrastructure;

/// <summary>Removes a cgroup subtree a test created, killing what is left in it first (children before parents).</summary>
internal static class CgroupCleanup
{
    public static void KillAndRemove(string group)
    {
        if (!Directory.Exists(group))
        {
            return;
        }

        foreach (var child in Directory.GetDirectories(group))
        {
            KillAndRemove(child);
        }

        try
        {
            File.WriteAllText(Path.Combine(group, "cgroup.kill"), "1");
        }
        catch (IOException)
        {
            // Gone already, or a kernel without cgroup.kill: the removal below reports what is left.
        }

        for (var attempt = 0; ; attempt++)
        {
            try
            {
                Directory.Delete(group);
                return;
            }
            catch (DirectoryNotFoundException)
            {
                return;
            }
            catch (IOException) when (attempt < 200)
            {
                Thread.Sleep(10); // EBUSY until the killed processes are reaped
            }
        }
    }
}
