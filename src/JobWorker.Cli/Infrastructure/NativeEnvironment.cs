using System.Runtime.InteropServices;

namespace JobWorker.Cli.Infrastructure;

/// <summary>
/// Sets a variable in the process's native environment. Environment.SetEnvironmentVariable only
/// changes .NET's managed copy on Unix, but OpenSSL (and .NET's X509 root store loader) call getenv().
/// </summary>
internal static partial class NativeEnvironment
{
    public static void Set(string name, string value)
    {
        if (setenv(name, value, 1) != 0)
        {
            throw new InvalidOperationException($"setenv({name}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "setenv", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);
}
