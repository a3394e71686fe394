using System.Diagnostics.CodeAnalysis;
using System.Net;

namespace JobWorker.Server.Configuration;

/// <summary>A parsed listening address: an IP endpoint, or <c>localhost</c> (both loopback addresses) and a port.</summary>
public sealed record ListenAddress(IPAddress? Address, int Port)
{
    /// <summary>Whether this is <c>localhost:port</c> rather than one IP address.</summary>
    public bool IsLocalhost => Address is null;

    /// <summary>Whether only this machine can connect.</summary>
    public bool IsLoopback => Address is null || IPAddress.IsLoopback(Address);

    /// <summary>Parses <c>IP:port</c>, <c>[IPv6]:port</c> or <c>localhost:port</c> (not port 0).</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out ListenAddress? address, [NotNullWhen(false)] out string? error)
    {
        address = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "the address is empty; use IP:port, [IPv6]:port or localhost:port";
            return false;
        }

        text = text.Trim();
        if (text.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase))
        {
            if (int.TryParse(text.AsSpan("localhost:".Length), out var port) && port == 0)
            {
                // localhost is two listeners (127.0.0.1 and ::1), which could not share one free port.
                error = $"'{text}': port 0 (any free port) needs one IP address; use 127.0.0.1:0 or [::1]:0";
                return false;
            }

            if (port is > 0 and <= 65535)
            {
                address = new ListenAddress(null, port);
                error = null;
                return true;
            }

            error = $"'{text}' has no valid port (0-65535)";
            return false;
        }

        // IPEndPoint.TryParse accepts a bare IP too (port 0): require an explicit port.
        if (!IPEndPoint.TryParse(text, out var endpoint) || !HasPort(text))
        {
            error = $"'{text}' is not IP:port, [IPv6]:port or localhost:port";
            return false;
        }

        address = new ListenAddress(endpoint.Address, endpoint.Port);
        error = null;
        return true;
    }

    /// <summary>Parses an address that <see cref="ServerOptions.Validate"/> already accepted.</summary>
    public static ListenAddress Parse(string text)
        => TryParse(text, out var address, out var error) ? address : throw new FormatException(error);

    private static bool HasPort(string text)
    {
        // IPv6 needs brackets ("[::1]:50051"); otherwise "::1" would read as address "::" and port 1.
        var colon = text.LastIndexOf(':');
        return text[0] == '['
            ? colon > 0 && text[colon - 1] == ']'
            : colon > 0 && text.IndexOf(':', StringComparison.Ordinal) == colon;
    }

    public override string ToString() => Address is null ? $"localhost:{Port}" : new IPEndPoint(Address, Port).ToString();
}
