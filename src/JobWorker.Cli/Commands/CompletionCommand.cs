using System.CommandLine;
using JobWorker.Cli.Infrastructure;

namespace JobWorker.Cli.Commands;

/// <summary>
/// <c>worker completion bash|zsh|fish</c>: prints a completion script for the shell. Each script is self-contained: on
/// Tab it runs <c>worker "[suggest:N]" "LINE"</c> (System.CommandLine's suggest directive: N is the cursor's position in
/// LINE) and offers what it prints, one candidate a line. No helper tool (dotnet-suggest) is needed.
/// </summary>
internal sealed class CompletionCommand : VerbCommand
{
    private const string Bash = """
        # bash completion for worker. Load it with: source <(worker completion bash)
        _worker_complete() {
            local line
            if [[ -n ${COMP_LINE-} ]]; then
                line=${COMP_LINE:0:COMP_POINT}
            else
                line="${COMP_WORDS[*]:0:COMP_CWORD+1}"
            fi
            local IFS=$'\n'
            COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "[suggest:${#line}]" "$line" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
        }
        complete -o default -F _worker_complete worker

        """;

    private const string Zsh = """
        #compdef worker
        # zsh completion for worker. Load it (after compinit) with: source <(worker completion zsh)
        _worker() {
            local line=${BUFFER[1,CURSOR]}
            local -a candidates
            candidates=("${(@f)$("${words[1]}" "[suggest:${#line}]" "$line" 2>/dev/null)}")
            candidates=(${candidates:#})
            if (( ${#candidates} )); then
                compadd -a candidates
            else
                _files
            fi
        }
        compdef _worker worker

        """;

    private const string Fish = """
        # fish completion for worker. Load it with: worker completion fish | source
        function __worker_complete
            set -l line (commandline -cp)
            set -l tokens (commandline -opc)
            $tokens[1] "[suggest:"(string length -- "$line")"]" "$line" 2>/dev/null
        end
        complete -c worker -f -a '(__worker_complete)'

        """;

    private readonly Argument<string> _shell = new("shell")
    {
        Description = "The shell: bash, zsh or fish",
        HelpName = "SHELL",
    };

    public CompletionCommand(CliContext context)
        : base("completion", "Print a shell completion script (bash, zsh, fish); job ids complete from the server", context)
    {
        _shell.Validators.Add(r =>
        {
            var shell = r.Tokens.Count > 0 ? r.Tokens[0].Value : string.Empty;
            if (shell is not ("bash" or "zsh" or "fish"))
            {
                r.AddError($"'{shell}' is not a shell this command knows: use bash, zsh or fish");
            }
        });
        _shell.CompletionSources.Add("bash", "zsh", "fish");
        Arguments.Add(_shell);
    }

    protected override Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        WriteStdout(parseResult.GetRequiredValue(_shell) switch
        {
            "bash" => Bash,
            "zsh" => Zsh,
            _ => Fish,
        });
        return Task.FromResult(ExitCodes.Success);
    }
}
