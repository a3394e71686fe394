using System.CommandLine;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using JobWorker.Cli.Connection;
using JobWorker.Cli.Formatting;
using JobWorker.Cli.Infrastructure;

namespace JobWorker.Cli.Commands;

/// <summary>
/// <c>worker context add|use|ls|rm</c>: named connection settings (a server, a client certificate and key, the CA) in the
/// client config file, like kubectl's contexts. The file is the one every verb reads (--config, WORKER_CONFIG, default).
/// </summary>
internal sealed class ContextCommand : Command
{
    public ContextCommand(CliContext context)
        : base("context", "Manage named connection settings (server, certificate, key, CA) in the client config file")
    {
        Subcommands.Add(new ContextAddCommand(context));
        Subcommands.Add(new ContextUseCommand(context));
        Subcommands.Add(new ContextListCommand(context));
        Subcommands.Add(new ContextRemoveCommand(context));
    }

    public static Argument<string> NameArgument(CliContext context) => new("name")
    {
        Description = "The context's name (letters, digits, '.', '_', '-', '@')",
        HelpName = "NAME",
        Validators = { r => ValidateName(r) },
        CompletionSources = { c => Completion.ContextNames(context, c) },
    };

    /// <summary>The file the context verbs read and write: --config, else WORKER_CONFIG, else the default.</summary>
    public static string ConfigPath(CliContext context, ParseResult parseResult) => ClientConfigFile.Locate(parseResult.GetValue(context.Globals.Config)).Path;

    public static CliException NotFound(string name, string path, ClientConfig config)
    {
        var known = config.Contexts is { Count: > 0 } contexts ? $"the contexts are {string.Join(", ", contexts.Keys)}" : "it has no contexts";
        return new CliException($"no context '{name}' in config file {path} ({known})", ExitCodes.NotFound);
    }

    private static void ValidateName(System.CommandLine.Parsing.ArgumentResult result)
    {
        var name = result.Tokens.Count > 0 ? result.Tokens[0].Value : string.Empty;
        if (name.Length is 0 or > 64 || !char.IsAsciiLetterOrDigit(name[0]) || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or '@'))
        {
            result.AddError($"'{name}' is not a context name: use 1 to 64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit");
        }
    }
}

/// <summary><c>worker context add NAME [--server URL] [--cert FILE --key FILE] [--ca FILE]</c>.</summary>
internal sealed class ContextAddCommand : VerbCommand
{
    private readonly Argument<string> _name;
    private readonly Option<bool> _force = new("--force") { Description = "Replace a context of the same name" };
    private readonly Option<bool> _use = new("--use") { Description = "Also make it the current context (the first context added always is)" };

    public ContextAddCommand(CliContext context)
        : base("add", "Add a context from --server, --cert, --key, --ca (and --connect-timeout, --reconnect-timeout)", context)
    {
        _name = ContextCommand.NameArgument(context);
        Arguments.Add(_name);
        Options.Add(_force);
        Options.Add(_use);
    }

    protected override Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        var globals = Context.Globals;
        var name = parseResult.GetRequiredValue(_name);
        var server = parseResult.GetValue(globals.Server);
        var cert = parseResult.GetValue(globals.Cert);
        var key = parseResult.GetValue(globals.Key);
        var ca = parseResult.GetValue(globals.Ca);
        var connectTimeout = parseResult.GetValue(globals.ConnectTimeout);
        var reconnectTimeout = parseResult.GetValue(globals.ReconnectTimeout);
        if (server is null && cert is null && key is null && ca is null && connectTimeout is null && reconnectTimeout is null)
        {
            throw new CliException("give the context's settings: --server URL, --cert FILE --key FILE, --ca FILE (a setting it lacks comes from the config file's top level, else its default)", ExitCodes.Usage);
        }

        if ((cert is null) != (key is null))
        {
            throw new CliException("--cert and --key go together: give both (the client certificate and its private key)", ExitCodes.Usage);
        }

        var entry = new ClientContext
        {
            Server = server is null ? null : ConnectionSettings.ParseServer(server).ToString().TrimEnd('/'),
            Cert = cert is null ? null : ReadableFile("--cert", cert),
            Key = key is null ? null : ReadableFile("--key", key),
            Ca = ca is null ? null : ReadableFile("--ca", ca),
            ConnectTimeout = connectTimeout is { } c ? $"{(long)c.TotalMilliseconds}ms" : null,
            ReconnectTimeout = reconnectTimeout is { } r ? $"{(long)r.TotalMilliseconds}ms" : null,
        };
        CheckPem(entry);

        var path = ContextCommand.ConfigPath(Context, parseResult);
        bool replaced = false, makeCurrent = false;
        ClientConfigFile.Update(path, create: true, config =>
        {
            config.Contexts ??= new(StringComparer.Ordinal);
            replaced = config.Contexts.ContainsKey(name);
            if (replaced && !parseResult.GetValue(_force))
            {
                throw new CliException($"config file {path} has a context '{name}' already: pass --force to replace it, or 'worker context rm {name}' first");
            }

            config.Contexts[name] = entry;
            makeCurrent = parseResult.GetValue(_use) || string.IsNullOrEmpty(config.CurrentContext) || !config.Contexts.ContainsKey(config.CurrentContext);
            if (makeCurrent)
            {
                config.CurrentContext = name;
            }
        });
        Context.Notify(DisplayName, $"{(replaced ? "replaced" : "added")} context '{name}' in {path}{(makeCurrent ? "; it is the current context" : $"; use it with 'worker context use {name}' or --context {name}")}");
        return Task.FromResult(ExitCodes.Success);
    }

    private static string ReadableFile(string option, string path)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            throw new CliException($"{option}: {full} is a directory, not a PEM file", ExitCodes.Usage);
        }

        try
        {
            using var stream = File.OpenRead(full);
        }
        catch (FileNotFoundException)
        {
            throw new CliException($"{option}: {full} does not exist", ExitCodes.Usage);
        }
        catch (DirectoryNotFoundException)
        {
            throw new CliException($"{option}: {full} does not exist", ExitCodes.Usage);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"{option}: cannot read {full}: {ex.Message.TrimEnd('.')}", ExitCodes.Usage);
        }

        return full;
    }

    // What the connection would load, loaded now: a swapped or mismatched file is reported here, not at the first command.
    private static void CheckPem(ClientContext entry)
    {
        if (entry.Cert is not null && entry.Key is not null)
        {
            try
            {
                using var certificate = X509Certificate2.CreateFromPemFile(entry.Cert, entry.Key);
            }
            catch (Exception ex) when (ex is CryptographicException or ArgumentException or IOException)
            {
                throw new CliException($"--cert {entry.Cert} with --key {entry.Key}: not a PEM certificate and its private key ({ex.Message.TrimEnd('.')})", ExitCodes.Usage);
            }
        }

        if (entry.Ca is not null)
        {
            var collection = new X509Certificate2Collection();
            try
            {
                collection.ImportFromPemFile(entry.Ca);
            }
            catch (Exception ex) when (ex is CryptographicException or IOException)
            {
                throw new CliException($"--ca {entry.Ca}: not a PEM certificate ({ex.Message.TrimEnd('.')})", ExitCodes.Usage);
            }

            if (collection.Count == 0)
            {
                throw new CliException($"--ca {entry.Ca}: holds no PEM certificate", ExitCodes.Usage);
            }

            foreach (var certificate in collection)
            {
                certificate.Dispose();
            }
        }
    }
}

/// <summary><c>worker context use NAME</c>: makes NAME the current context.</summary>
internal sealed class ContextUseCommand : VerbCommand
{
    private readonly Argument<string> _name;

    public ContextUseCommand(CliContext context)
        : base("use", "Make a context the current one (used when neither --context nor WORKER_CONTEXT names one)", context)
    {
        _name = ContextCommand.NameArgument(context);
        Arguments.Add(_name);
    }

    protected override Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetRequiredValue(_name);
        var path = ContextCommand.ConfigPath(Context, parseResult);
        ClientConfigFile.Update(path, create: false, config =>
        {
            if (config.Contexts?.ContainsKey(name) != true)
            {
                throw ContextCommand.NotFound(name, path, config);
            }

            config.CurrentContext = name;
        });
        Context.Notify(DisplayName, $"the current context is '{name}'");
        return Task.FromResult(ExitCodes.Success);
    }
}

/// <summary><c>worker context ls</c>: the contexts, the one in effect marked with <c>*</c>.</summary>
internal sealed class ContextListCommand : VerbCommand
{
    private static readonly string[] Header = ["CURRENT", "NAME", "SERVER", "CERT"];

    public ContextListCommand(CliContext context)
        : base("ls", "List the contexts; '*' marks the one in effect", context)
    {
        Aliases.Add("list");
    }

    protected override Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        var path = ContextCommand.ConfigPath(Context, parseResult);
        var config = ClientConfigFile.LoadOrEmpty(path);
        if (config.Contexts is not { Count: > 0 } contexts)
        {
            Context.Notify(DisplayName, $"no contexts in {path}: add one with 'worker context add NAME --server URL --cert FILE --key FILE --ca FILE'");
            return Task.FromResult(ExitCodes.Success);
        }

        var flag = parseResult.GetValue(Context.Globals.Context);
        var current = !string.IsNullOrWhiteSpace(flag) ? flag
            : Environment.GetEnvironmentVariable("WORKER_CONTEXT") is { Length: > 0 } fromEnvironment ? fromEnvironment
            : config.CurrentContext;
        var rows = new List<string[]> { Header };
        rows.AddRange(contexts.Select(c => new[]
        {
            c.Key == current ? "*" : string.Empty,
            c.Key,
            c.Value.Server ?? "-",
            c.Value.Cert ?? "-",
        }.Select(cell => TerminalText.Escape(cell)).ToArray()));
        var widths = Enumerable.Range(0, 4).Select(i => rows.Max(r => r[i].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in rows)
        {
            sb.Append(string.Join("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd()).Append('\n');
        }

        WriteStdout(sb.ToString());
        return Task.FromResult(ExitCodes.Success);
    }
}

/// <summary><c>worker context rm NAME</c>: removes a context (and unsets it as current).</summary>
internal sealed class ContextRemoveCommand : VerbCommand
{
    private readonly Argument<string> _name;

    public ContextRemoveCommand(CliContext context)
        : base("rm", "Remove a context", context)
    {
        Aliases.Add("remove");
        _name = ContextCommand.NameArgument(context);
        Arguments.Add(_name);
    }

    protected override Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        var name = parseResult.GetRequiredValue(_name);
        var path = ContextCommand.ConfigPath(Context, parseResult);
        var wasCurrent = false;
        ClientConfigFile.Update(path, create: false, config =>
        {
            if (config.Contexts?.Remove(name) != true)
            {
                throw ContextCommand.NotFound(name, path, config);
            }

            wasCurrent = config.CurrentContext == name;
            if (wasCurrent)
            {
                config.CurrentContext = null;
            }
        });
        Context.Notify(DisplayName, wasCurrent
            ? $"removed context '{name}', the current one: no context is current now (choose one with 'worker context use NAME')"
            : $"removed context '{name}'");
        return Task.FromResult(ExitCodes.Success);
    }
}
