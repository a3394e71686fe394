using System.Text.Json;
using System.Text.Json.Nodes;

namespace JobWorker.Core.State;

/// <summary>
/// The ids allocated to owners, in <c>&lt;state&gt;/owners.json</c>: <c>{"version":1,"owners":{"alice":61184}}</c>.
/// Every change rewrites the file whole (a temporary file, fsync, rename, fsync of the directory) before the id is
/// used, so an id a job ran under is never handed to another owner after a crash or power loss.
/// </summary>
/// <remarks>
/// <see cref="Add"/> calls must be serialized by the caller; <see cref="Ids"/> may be read at any time (each change
/// publishes a new dictionary). The state directory's lock keeps other servers out.
/// </remarks>
internal sealed class OwnerIdStore
{
    internal const string FileName = "owners.json";
    private const int Version = 1;

    private readonly string _directory;
    private volatile Dictionary<string, uint> _ids;

    private OwnerIdStore(string directory, Dictionary<string, uint> ids)
    {
        _directory = directory;
        _ids = ids;
    }

    public string Path => System.IO.Path.Combine(_directory, FileName);

    /// <summary>Every allocation, owner → id: a snapshot that never changes.</summary>
    public IReadOnlyDictionary<string, uint> Ids => _ids;

    /// <summary>Reads the allocations of a state directory (none when the file does not exist).</summary>
    /// <exception cref="StateFormatException">The file is not a valid allocation file or is newer than this server reads.</exception>
    public static OwnerIdStore Open(string stateDirectory)
    {
        var path = System.IO.Path.Combine(stateDirectory, FileName);
        byte[] json;
        try
        {
            json = File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            return new OwnerIdStore(stateDirectory, new Dictionary<string, uint>(StringComparer.Ordinal));
        }

        return new OwnerIdStore(stateDirectory, Parse(json, path));
    }

    /// <summary>Records <paramref name="owner"/>'s id durably; on failure nothing changes, in memory or on disk.</summary>
    /// <exception cref="IOException">The file cannot be written (disk full); the previous one is kept.</exception>
    public void Add(string owner, uint id)
    {
        var next = new Dictionary<string, uint>(_ids, StringComparer.Ordinal) { [owner] = id };
        var owners = new JsonObject();
        foreach (var (name, value) in next.OrderBy(kv => kv.Value))
        {
            owners[name] = value;
        }

        var document = new JsonObject { ["version"] = Version, ["owners"] = owners };
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            document.WriteTo(writer);
        }

        FileJobStore.WriteAtomically(_directory, FileName, buffer.WrittenSpan, flush: true);
        _ids = next;
    }

    private static Dictionary<string, uint> Parse(byte[] json, string path)
    {
        var ids = new Dictionary<string, uint>(StringComparer.Ordinal);
        try
        {
            var root = JsonNode.Parse(json) as JsonObject ?? throw new FormatException("not a JSON object");
            var version = root["version"]?.GetValue<int>() ?? throw new FormatException("no \"version\"");
            if (version > Version)
            {
                throw new StateFormatException(path, $"{path} has version {version}, newer than this server reads ({Version}): it was written by a newer JobWorker server. Use that version or a newer one; nothing was changed.");
            }

            var owners = root["owners"] as JsonObject ?? throw new FormatException("no \"owners\" object");
            foreach (var (owner, value) in owners)
            {
                var id = value?.GetValue<uint>() ?? throw new FormatException($"owner '{owner}' has no id");
                if (ids.ContainsValue(id))
                {
                    throw new FormatException($"id {id} is allocated twice");
                }

                ids[owner] = id;
            }
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException)
        {
            throw new StateFormatException(path, $"{path} is not a valid owner id file: {ex.Message}. Restore it from a backup: without it, owners would get new ids and files of their old ones would be orphaned.", ex);
        }

        return ids;
    }
}
