using System.CommandLine;
using System.CommandLine.Invocation;
using JobWorker.Cli.Commands;
using JobWorker.Cli.Formatting;
using JobWorker.Cli.Infrastructure;

namespace JobWorker.Cli;

/// <summary>Builds the command tree and runs one command line: parse errors exit 2, signals 130/143.</summary>
internal sealed class WorkerCli
{
    private readonly CliContext _context;
    private readonly StartCommand _start;
    private readonly RunCommand _run;

    public WorkerCli(CliContext context)
    {
        _context = context;
        Root = new RootCommand("worker: run Linux programs as jobs on a JobWorker server (mutual TLS, cgroup v2 limits).");
        foreach (var option in context.Globals.All)
        {
            Root.Options.Add(option);
        }

        _start = new StartCommand(context);
        _run = new RunCommand(context);
        Root.Subcommands.Add(_start);
        Root.Subcommands.Add(_run);
        Root.Subcommands.Add(new StatusCommand(context));
        Root.Subcommands.Add(new ListCommand(context));
        Root.Subcommands.Add(new LogsCommand(context));
        Root.Subcommands.Add(new StopCommand(context));
        Root.Subcommands.Add(new RemoveCommand(context));
        Root.Subcommands.Add(new CertsCommand(context));
        Root.Subcommands.Add(new ContextCommand(context));
        Root.Subcommands.Add(new CompletionCommand(context));
        Completion.AddJobIdSources(Root, context);
        context.Globals.Context.CompletionSources.Add(c => Completion.ContextNames(context, c));
    }

    public RootCommand Root { get; }

    public ParseResult Parse(IReadOnlyList<string> args) => Root.Parse(SeparateJobCommandLine(args));

    public async Task<int> RunAsync(IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        var parseResult = Parse(args);
        if (parseResult.Errors.Count > 0 && parseResult.Action is ParseErrorAction or null)
        {
            var names = new List<string>();
            for (var r = parseResult.CommandResult; r is not null && r.Command != Root; r = r.Parent as System.CommandLine.Parsing.CommandResult)
            {
                names.Insert(0, r.Command.Name);
            }

            var verb = names.Count == 0 ? string.Empty : " " + string.Join(" ", names);
            foreach (var error in parseResult.Errors)
            {
                _context.Error.WriteLine($"worker{verb}: {TerminalText.Escape(error.Message)}");
            }

            _context.Error.WriteLine($"Run 'worker{verb} --help' for usage.");
            return ExitCodes.Usage;
        }

        // Signals are handled by Termination (exit 130/143), not by System.CommandLine's own handler.
        var configuration = new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false };
        return await parseResult.InvokeAsync(configuration, cancellationToken);
    }

    /// <summary>
    /// <c>worker start bash -c 'echo hi'</c> should run <c>bash -c …</c>, not reject <c>-c</c> as an unknown
    /// option: like docker and sudo, options end at the job's command. This inserts the <c>--</c> that
    /// System.CommandLine needs before the first positional token after <c>start</c>/<c>run</c>.
    /// </summary>
    private string[] SeparateJobCommandLine(IReadOnlyList<string> args)
    {
        var list = args.ToList();
        var valueOptions = new HashSet<string>(StringComparer.Ordinal);
        foreach (var option in _context.Globals.All.Concat(_start.Spec.Options))
        {
            valueOptions.Add(option.Name);
            valueOptions.UnionWith(option.Aliases);
        }

        var i = 0;
        Command? verb = null;
        for (; i < list.Count; i++)
        {
            var token = list[i];
            if (token == "--")
            {
                return [.. list];
            }

            if (token.StartsWith('-'))
            {
                if (valueOptions.Contains(token))
                {
                    i++;
                }

                continue;
            }

            verb = Root.Subcommands.FirstOrDefault(c => c.Name == token || c.Aliases.Contains(token));
            break;
        }

        if (verb != _start && verb != _run)
        {
            return [.. list];
        }

        for (i++; i < list.Count; i++)
        {
            var token = list[i];
            if (token == "--")
            {
                break;
            }

            if (token.StartsWith('-') && token.Length > 1)
            {
                if (valueOptions.Contains(token))
                {
                    i++;
                }

                continue;
            }

            list.Insert(i, "--");
            break;
        }

        return [.. list];
    }
}
