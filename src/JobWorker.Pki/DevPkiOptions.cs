namespace JobWorker.Pki;

/// <summary>Settings for <see cref="DevPki.Create"/>.</summary>
public sealed record DevPkiOptions
{
    /// <summary>
    /// Extra DNS names or IP addresses for the server certificate. <c>localhost</c>, <c>127.0.0.1</c>, <c>::1</c>
    /// and the machine's host name are always included.
    /// </summary>
    public IReadOnlyList<string> ServerNames { get; init; } = [];

    /// <summary>Lifetime of the server and client certificates. Default 365 days.</summary>
    public TimeSpan CertificateLifetime { get; init; } = TimeSpan.FromDays(365);

    /// <summary>Lifetime of the CA. Default 10 years.</summary>
    public TimeSpan CaLifetime { get; init; } = TimeSpan.FromDays(3650);

    /// <summary>Replace an existing PKI in the directory. Default false: an existing CA key is an error.</summary>
    public bool Overwrite { get; init; }
}
