using System.Collections;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace JobWorker.Server.Services;

/// <summary>
/// Finds fields the server does not know in a request (a newer client, or a typo'd field through a dynamic
/// client). Protobuf keeps them silently; we refuse them, so a client never believes that a setting the server
/// ignores (say, a future limit) took effect.
/// </summary>
public static class UnknownFields
{
    /// <summary>The path and number of the first unknown field, for example <c>limits: field number 9</c>, or null.</summary>
    public static string? Find(IMessage message) => Find(message, "");

    private static string? Find(IMessage message, string path)
    {
        var descriptor = message.Descriptor;
        // Re-reading the message's own serialization finds unknown fields: they are written back verbatim.
        // Requests are small, so this costs well under a microsecond for most calls.
        var input = new CodedInputStream(message.ToByteArray());
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            var number = WireFormat.GetTagFieldNumber(tag);
            if (descriptor.FindFieldByNumber(number) is null)
            {
                return $"{(path.Length == 0 ? descriptor.Name : path)}: unknown field number {number}";
            }

            input.SkipLastField();
        }

        foreach (var field in descriptor.Fields.InFieldNumberOrder())
        {
            if (field.FieldType != FieldType.Message)
            {
                continue;
            }

            var name = path.Length == 0 ? field.Name : $"{path}.{field.Name}";
            var value = field.Accessor.GetValue(message);
            string? found = null;
            if (field.IsMap)
            {
                foreach (DictionaryEntry entry in (IDictionary)value)
                {
                    found ??= entry.Value is IMessage child ? Find(child, $"{name}[{entry.Key}]") : null;
                }
            }
            else if (field.IsRepeated)
            {
                var index = 0;
                foreach (var item in (IList)value)
                {
                    found ??= item is IMessage child ? Find(child, $"{name}[{index}]") : null;
                    index++;
                }
            }
            else if (value is IMessage child)
            {
                found = Find(child, name);
            }

            if (found is not null)
            {
                return found;
            }
        }

        return null;
    }
}
