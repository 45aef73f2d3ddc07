package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// completeCommand is the hidden command the completion scripts run: "qxd
// __complete WORD... CURRENT" prints the candidates for CURRENT, the word being
// typed after the words before it, one a line as "candidate<TAB>description".
// Nothing printed means: complete file names.
const completeCommand = "__complete"

// completionScripts are what 'qxd completion SHELL' prints. Each asks qxd itself
// for the candidates, so they follow the commands and flags of the binary run.
var completionScripts = map[string]string{
	"bash": `# bash completion for qxd. Load it with: source <(qxd completion bash)
_qxd() {
    local IFS=$'\n' cur="${COMP_WORDS[COMP_CWORD]}"
    COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD-1}" "$cur" 2>/dev/null | cut -f1)" -- "$cur"))
}
complete -o default -F _qxd qxd
`,
	"zsh": `#compdef qxd
# zsh completion for qxd. Load it with: source <(qxd completion zsh)
# (after compinit), or save it as _qxd in a directory of $fpath.
_qxd() {
  local -a lines cands
  local line
  lines=("${(@f)$(${words[1]} __complete "${(@)words[2,CURRENT-1]}" "${words[CURRENT]}" 2>/dev/null)}")
  for line in $lines; do
    [[ -n $line ]] && cands+=("${${line%%$'\t'*}//:/\\:}:${line#*$'\t'}")
  done
  if (( ${#cands} )); then
    _describe 'qxd' cands
  else
    _files
  fi
}
compdef _qxd qxd
`,
	"fish": `# fish completion for qxd. Load it with: qxd completion fish | source
function __qxd_complete
    set -l tokens (commandline -opc)
    set -l out ($tokens[1] __complete $tokens[2..-1] (commandline -ct) 2>/dev/null)
    if test (count $out) -eq 0
        __fish_complete_path (commandline -ct)
    else
        printf '%s\n' $out
    end
end
complete -c qxd -f -a '(__qxd_complete)'
`,
}

func (a *app) completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: bash, zsh or fish",
		ArgsUsage: "SHELL",
		Description: "Completes commands, subcommands and flags; file names elsewhere. The script\n" +
			"asks the qxd binary it runs, so it follows upgrades without being reloaded.",
		Action: func(c *cli.Context) error {
			shell, err := oneArg(c, "SHELL (bash, zsh or fish)")
			if err != nil {
				return err
			}
			script, ok := completionScripts[shell]
			if !ok {
				return fmt.Errorf("completion: shell %q is not supported: use bash, zsh or fish", shell)
			}
			_, err = io.WriteString(a.stdout, script)
			return err
		},
	}
}

// complete prints the candidates for the last of words, typed after the others
// (the command line without "qxd"): subcommands, or flags when it starts with
// "-". After a flag that takes a value it prints nothing, for file names.
func complete(w io.Writer, app *cli.App, words []string) {
	if len(words) == 0 {
		words = []string{""}
	}
	before, cur := words[:len(words)-1], words[len(words)-1]
	cmds, flags := app.Commands, app.Flags
	for i := 0; i < len(before); i++ {
		tok := before[i]
		if tok == "--" {
			return // arguments only
		}
		if strings.HasPrefix(tok, "-") && len(tok) > 1 {
			name, _, hasValue := strings.Cut(strings.TrimLeft(tok, "-"), "=")
			f := findFlag(flags, name)
			if f == nil {
				f = findFlag(app.Flags, name)
			}
			if f != nil && !hasValue && takesValue(f) {
				if i == len(before)-1 {
					return // cur is this flag's value
				}
				i++
			}
			continue
		}
		if c := findCommand(cmds, tok); c != nil {
			cmds = c.Subcommands
			flags = append(slices.Clone(c.Flags), app.Flags...)
		}
	}
	if strings.HasPrefix(cur, "-") {
		seen := map[string]bool{}
		for _, f := range flags {
			usage := ""
			if d, ok := f.(cli.DocGenerationFlag); ok {
				usage = d.GetUsage()
			}
			for _, n := range f.Names() {
				cand := "--" + n
				if len(n) == 1 {
					cand = "-" + n
				}
				if !seen[cand] && strings.HasPrefix(cand, cur) && (len(n) > 1 || !strings.HasPrefix(cur, "--")) {
					seen[cand] = true
					fmt.Fprintf(w, "%s\t%s\n", cand, oneLine(strings.ReplaceAll(usage, "`", "")))
				}
			}
		}
		return
	}
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		for _, n := range c.Names() {
			if strings.HasPrefix(n, cur) {
				fmt.Fprintf(w, "%s\t%s\n", n, c.Usage)
			}
		}
	}
}
