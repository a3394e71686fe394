using System.CommandLine;
using JobWorker.Cli.Parsing;
using JobWorker.Protocol.V1;

namespace JobWorker.Cli.Commands;

/// <summary>What to run and with which limits: shared by <c>start</c> and <c>run</c>.</summary>
internal sealed class JobSpecOptions
{
    public Option<double?> Cpu { get; } = OptionFactory.Cpu("--cpu", "CPU limit in cores (0.5 = half a core)");

    public Option<long?> Memory { get; } = OptionFactory.Size("--memory", "Memory limit, swap disabled (256M, 1G; units are binary)");

    public Option<IoLimitSpec[]> IoReadBps { get; } = OptionFactory.DeviceLimit("--io-read-bps", "Read bandwidth limit on a block device (/dev/sda=10M), repeatable", isRate: true);

    public Option<IoLimitSpec[]> IoWriteBps { get; } = OptionFactory.DeviceLimit("--io-write-bps", "Write bandwidth limit on a block device (/dev/sda=10M), repeatable", isRate: true);

    public Option<IoLimitSpec[]> IoReadIops { get; } = OptionFactory.DeviceLimit("--io-read-iops", "Read operations per second on a block device (/dev/sda=100), repeatable", isRate: false);

    public Option<IoLimitSpec[]> IoWriteIops { get; } = OptionFactory.DeviceLimit("--io-write-iops", "Write operations per second on a block device (/dev/sda=100), repeatable", isRate: false);

    public Option<long?> Pids { get; } = OptionFactory.PositiveInteger("--pids", "Maximum number of processes and threads");

    public Option<string[]> Env { get; } = new("--env", "-e")
    {
        Description = "Environment variable for the job, repeatable",
        HelpName = "KEY=VALUE",
        Arity = ArgumentArity.ZeroOrMore,
        AllowMultipleArgumentsPerToken = false,
        DefaultValueFactory = _ => [],
        Validators =
        {
            r =>
            {
                foreach (var token in r.Tokens)
                {
                    if (!KeyValueParser.TryParse(token.Value, "KEY=VALUE (for example --env LANG=C.UTF-8)", out _, out _, out var error))
                    {
                        r.AddError($"--env: {error}");
                    }
                }
            },
        },
    };

    public Option<string?> Cwd { get; } = new("--cwd")
    {
        Description = "Working directory of the job [default: the job user's home or /]",
        HelpName = "DIR",
    };

    public Option<IsolationSpec?> Isolate { get; } = new("--isolate")
    {
        Description = "Namespaces to isolate the job in: pid,mount,net,ipc,uts, all or none; the server adds those it requires [default: the server's]",
        HelpName = "LIST",
        CustomParser = r =>
        {
            if (IsolationSpec.TryParse(r.Tokens.Count > 0 ? r.Tokens[^1].Value : null, out var spec, out var error))
            {
                return spec;
            }

            r.AddError(error);
            return null;
        },
    };

    public Argument<string[]> Command { get; } = new("command")
    {
        Description = "The program and its arguments (put -- before them if an argument starts with -)",
        HelpName = "CMD [ARGS...]",
        Arity = ArgumentArity.OneOrMore,
        Validators =
        {
            // Unknown options before the command land here as its first token (no program name starts with '-').
            r =>
            {
                if (r.Tokens.Count > 0 && r.Tokens[0].Value.StartsWith('-'))
                {
                    r.AddError($"unknown option '{r.Tokens[0].Value}'");
                }
            },
        },
    };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Cpu, Memory, IoReadBps, IoWriteBps, IoReadIops, IoWriteIops, Pids, Env, Cwd, Isolate })
        {
            command.Options.Add(option);
        }

        command.Arguments.Add(Command);
    }

    public StartJobRequest ToRequest(ParseResult parseResult)
    {
        var commandLine = parseResult.GetValue(Command) ?? [];
        var request = new StartJobRequest
        {
            Command = commandLine[0],
            WorkingDirectory = parseResult.GetValue(Cwd) ?? string.Empty,
            Limits = new ResourceLimits(),
        };
        request.Args.AddRange(commandLine.Skip(1));

        foreach (var pair in parseResult.GetValue(Env) ?? [])
        {
            KeyValueParser.TryParse(pair, string.Empty, out var key, out var value, out _);
            request.Env[key] = value;
        }

        if (parseResult.GetValue(Cpu) is { } cpu)
        {
            request.Limits.CpuCores = cpu;
        }

        if (parseResult.GetValue(Memory) is { } memory)
        {
            request.Limits.MemoryBytes = memory;
        }

        if (parseResult.GetValue(Pids) is { } pids)
        {
            request.Limits.MaxProcesses = pids;
        }

        var io = new Dictionary<string, IoLimit>(StringComparer.Ordinal);
        IoLimit For(string device)
        {
            if (!io.TryGetValue(device, out var limit))
            {
                io[device] = limit = new IoLimit { Device = device };
            }

            return limit;
        }

        foreach (var l in parseResult.GetValue(IoReadBps) ?? [])
        {
            For(l.Device).ReadBytesPerSecond = l.Value;
        }

        foreach (var l in parseResult.GetValue(IoWriteBps) ?? [])
        {
            For(l.Device).WriteBytesPerSecond = l.Value;
        }

        foreach (var l in parseResult.GetValue(IoReadIops) ?? [])
        {
            For(l.Device).ReadIops = l.Value;
        }

        foreach (var l in parseResult.GetValue(IoWriteIops) ?? [])
        {
            For(l.Device).WriteIops = l.Value;
        }

        request.Limits.Io.AddRange(io.Values);

        if (parseResult.GetValue(Isolate) is { } isolation)
        {
            request.Isolation = new Isolation { Pid = isolation.Pid, Mount = isolation.Mount, Network = isolation.Network, Ipc = isolation.Ipc, Uts = isolation.Uts };
        }

        return request;
    }

    /// <summary>Names of the options that take a value, used to find where the job's command line begins.</summary>
    public IEnumerable<Option> Options => [Cpu, Memory, IoReadBps, IoWriteBps, IoReadIops, IoWriteIops, Pids, Env, Cwd, Isolate];
}
