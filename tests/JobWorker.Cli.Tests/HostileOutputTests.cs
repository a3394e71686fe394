using System.Text.Json;
using System.Text.RegularExpressions;

namespace JobWorker.Cli.Tests;

/// <summary>
/// A job whose argv is built to attack the terminal of whoever lists it (clear the screen, return the cursor, paint a
/// fake row, a C1 CSI): the real <c>worker</c> binary against a real server shows it escaped in <c>list</c> and
/// <c>status</c>, and exactly in <c>--json</c>.
/// </summary>
[Trait("Category", "Integration")]
public sealed class HostileOutputTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private static readonly string[] Hostile =
    [
        "\u001b[2J\u001b[H",
        "\rroot",
        "x\n00000000000000000000000000000000  admin  running  1  1s ago  1s  0 B  /bin/true",
        "\u009b31mred",
        "del\u007f",
        "tab\there",
        "it's \\ fine",
        "\u202eevil",
    ];

    [Fact(Timeout = 60_000)]
    public async Task ListAndStatus_HostileArguments_EscapedInTablesExactInJson()
    {
        // sh ignores the positional arguments after its script: the job just sleeps, carrying the hostile argv.
        var start = await server.WorkerAsync(ServerFixture.Alice, ["start", "--", "/bin/sh", "-c", "sleep 30", "sh", .. Hostile]);
        WorkerResult.AssertExit(0, start);
        var id = start.Stdout.Trim();
        const string Expected = "/bin/sh -c 'sleep 30' sh $'\\e[2J\\e[H' $'\\rroot' "
            + "$'x\\n00000000000000000000000000000000  admin  running  1  1s ago  1s  0 B  /bin/true' $'\\u009b31mred' "
            + "$'del\\x7f' $'tab\\there' 'it'\\''s \\ fine' $'\\u202eevil'";
        try
        {
            var list = await server.WorkerAsync(ServerFixture.Alice, "list");
            var status = await server.WorkerAsync(ServerFixture.Alice, "status", id);
            var listJson = await server.WorkerAsync(ServerFixture.Alice, "list", "--json");
            var statusJson = await server.WorkerAsync(ServerFixture.Alice, "status", "--json", id);

            WorkerResult.AssertExit(0, list);
            WorkerResult.AssertExit(0, status);
            AssertNoControlCharacters(list.Stdout);
            AssertNoControlCharacters(status.Stdout);
            var row = Assert.Single(list.Stdout.Split('\n'), line => line.StartsWith(id, StringComparison.Ordinal));
            Assert.EndsWith(Expected, row, StringComparison.Ordinal);
            Assert.DoesNotContain(list.Stdout.Split('\n'), line => line.StartsWith("00000000000000000000000000000000", StringComparison.Ordinal));
            Assert.Matches("\nCommand: +" + Regex.Escape(Expected) + "\n", status.Stdout);
            Assert.All(status.Stdout.TrimEnd('\n').Split('\n'), line => Assert.Matches("^[A-Za-z/ ]+: ", line));

            WorkerResult.AssertExit(0, listJson);
            using var listed = JsonDocument.Parse(listJson.Stdout);
            var job = Assert.Single(listed.RootElement.EnumerateArray(), j => j.GetProperty("id").GetString() == id);
            Assert.Equal(["-c", "sleep 30", "sh", .. Hostile], job.GetProperty("args").EnumerateArray().Select(a => a.GetString()));
            WorkerResult.AssertExit(0, statusJson);
            using var described = JsonDocument.Parse(statusJson.Stdout);
            Assert.Equal(["-c", "sleep 30", "sh", .. Hostile], described.RootElement.GetProperty("args").EnumerateArray().Select(a => a.GetString()));
        }
        finally
        {
            await server.WorkerAsync(ServerFixture.Alice, "stop", "--grace", "0s", id);
            await server.WorkerAsync(ServerFixture.Alice, "rm", id);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Errors_EchoingHostileArguments_Escaped()
    {
        // A parse error quotes the bad value; a server error quotes the id it could not find.
        var parse = await server.WorkerAsync(ServerFixture.Alice, "start", "--memory", "\u001b[2J\r\n1x", "--", "/bin/true");
        var notFound = await server.WorkerAsync(ServerFixture.Alice, "status", "\u001b]0;pwned\u0007\n\u009b2J");

        WorkerResult.AssertExit(2, parse);
        AssertNoControlCharacters(parse.Stderr);
        Assert.Contains("\\e[2J\\r\\n1x", parse.Stderr, StringComparison.Ordinal);
        WorkerResult.AssertExit(1, notFound);
        AssertNoControlCharacters(notFound.Stderr);
        Assert.Single(notFound.Stderr.TrimEnd('\n').Split('\n'));
    }

    private static void AssertNoControlCharacters(string text)
    {
        var bad = text.Select((c, i) => (c, i)).Where(x => x.c != '\n' && (x.c < ' ' || x.c is >= '\u007f' and <= '\u009f' || x.c is '\u202e')).ToList();
        Assert.True(bad.Count == 0, $"control characters at {string.Join(", ", bad.Select(b => $"{b.i}: U+{(int)b.c:X4}"))} in: {text}");
    }
}
