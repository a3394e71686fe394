namespace JobWorker.Tests.Shared;

/// <summary>
/// Settings every test server gets unless a test sets its own, in-process (configuration keys) or as the real
/// binary (the same keys as <c>--key value</c> arguments). Linked into the server and CLI test projects.
/// </summary>
internal static class TestServerSettings
{
    /// <summary>
    /// Jobs of these tests read and write the test's files under /tmp, which a mount namespace would replace (the
    /// isolation policy has tests of its own); and they start and follow jobs in bursts, so no rate, stream or connection limits.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Defaults { get; } = new Dictionary<string, string>
    {
        ["JobWorker:DefaultIsolation"] = "None",
        ["JobWorker:RequiredIsolation"] = "None",
        ["RateLimits:User:StartJobBurst"] = "0",
        ["RateLimits:User:StartJobsPerSecond"] = "0",
        ["RateLimits:User:MaxOpenStreams"] = "0",
        ["RateLimits:Admin:StartJobBurst"] = "0",
        ["RateLimits:Admin:StartJobsPerSecond"] = "0",
        ["RateLimits:Admin:MaxOpenStreams"] = "0",
        ["RateLimits:User:MaxConnections"] = "0",
        ["RateLimits:Admin:MaxConnections"] = "0",
    };

    /// <summary><see cref="Defaults"/> as command-line arguments of the server binary.</summary>
    public static IEnumerable<string> Arguments => Defaults.SelectMany(setting => new[] { "--" + setting.Key, setting.Value });
}
