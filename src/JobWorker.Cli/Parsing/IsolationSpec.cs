using System.Diagnostics.CodeAnalysis;

namespace JobWorker.Cli.Parsing;

/// <summary>The namespaces named by <c>--isolate pid,mount,net,ipc,uts</c>, <c>all</c> or <c>none</c>.</summary>
internal readonly record struct IsolationSpec(bool Pid, bool Mount, bool Network, bool Ipc = false, bool Uts = false)
{
    public static bool TryParse(string? text, out IsolationSpec spec, [NotNullWhen(false)] out string? error)
    {
        spec = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "--isolate needs a list such as pid,mount,ipc,uts,net (or all, or none)";
            return false;
        }

        bool pid = false, mount = false, net = false, ipc = false, uts = false;
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            switch (part.ToLowerInvariant())
            {
                case "pid":
                    pid = true;
                    break;
                case "mount" or "mnt":
                    mount = true;
                    break;
                case "net" or "network":
                    net = true;
                    break;
                case "ipc":
                    ipc = true;
                    break;
                case "uts":
                    uts = true;
                    break;
                case "all":
                    pid = mount = net = ipc = uts = true;
                    break;
                case "none":
                    break;
                default:
                    error = $"unknown namespace '{part}' in --isolate: use pid, mount, net, ipc, uts, all or none";
                    return false;
            }
        }

        spec = new IsolationSpec(pid, mount, net, ipc, uts);
        error = null;
        return true;
    }
}
