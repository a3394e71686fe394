using System.Text.Json.Serialization;
using JobWorker.Cli.Connection;

namespace JobWorker.Cli.Formatting;

/// <summary>Source-generated JSON (no reflection, so NativeAOT and trimming stay warning-free).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip,
    AllowTrailingCommas = true)]
[JsonSerializable(typeof(JobView))]
[JsonSerializable(typeof(List<JobView>))]
[JsonSerializable(typeof(ClientConfig))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
