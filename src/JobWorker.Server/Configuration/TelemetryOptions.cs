namespace JobWorker.Server.Configuration;

/// <summary>
/// OpenTelemetry export, bound from <c>JobWorker:Telemetry</c>. The Prometheus endpoint stays
/// <see cref="ServerOptions.MetricsListen"/>; these settings add OTLP push of metrics and traces. See docs/operations.md.
/// </summary>
public sealed class TelemetryOptions
{
    public const string Section = ServerOptions.Section + ":Telemetry";

    /// <summary>The standard variable; when set (and <see cref="OtlpEndpoint"/> is not), the exporter reads it and its
    /// siblings (<c>OTEL_EXPORTER_OTLP_PROTOCOL</c>, <c>_HEADERS</c>, ...) itself.</summary>
    public const string OtlpEndpointVariable = "OTEL_EXPORTER_OTLP_ENDPOINT";

    public const string GrpcProtocol = "grpc";

    public const string HttpProtobufProtocol = "http/protobuf";

    /// <summary>OTLP collector address such as <c>http://127.0.0.1:4317</c>; wins over
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>. Empty, with the variable unset too, exports nothing and creates no spans.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary><c>grpc</c> (port 4317) or <c>http/protobuf</c> (port 4318) for <see cref="OtlpEndpoint"/>; empty
    /// uses <c>OTEL_EXPORTER_OTLP_PROTOCOL</c>, else <c>grpc</c>.</summary>
    public string? OtlpProtocol { get; set; }

    /// <summary>Every problem with these settings, each naming the setting; empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!string.IsNullOrEmpty(OtlpEndpoint)
            && (!Uri.TryCreate(OtlpEndpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)))
        {
            errors.Add($"{Section}:OtlpEndpoint: '{OtlpEndpoint}' is not an http:// or https:// URL (for example http://127.0.0.1:4317)");
        }

        if (!string.IsNullOrEmpty(OtlpProtocol) && OtlpProtocol is not GrpcProtocol and not HttpProtobufProtocol)
        {
            errors.Add($"{Section}:OtlpProtocol: '{OtlpProtocol}' is not '{GrpcProtocol}' or '{HttpProtobufProtocol}'");
        }

        return errors;
    }
}
