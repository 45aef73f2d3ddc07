package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// runLocal runs qxd in-process without a node and returns stdout, stderr and the
// error.
func runLocal(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr syncBuffer
	err := run(t.Context(), append([]string{"qxd"}, args...), strings.NewReader(""), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, _, err := runLocal(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	flag, _, err := runLocal(t, "--version")
	if err != nil {
		t.Fatal(err)
	}
	if out != flag {
		t.Errorf("qxd version printed %q, qxd --version %q: want the same", out, flag)
	}
	if lines := strings.Split(out, "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "qxd ") || !strings.Contains(lines[1], runtime.GOOS+"/"+runtime.GOARCH) {
		t.Errorf("qxd version printed %q, want 'qxd VERSION' and a line with the Go version and platform", out)
	}

	platform := runtime.GOOS + "/" + runtime.GOARCH
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build information", nil, "qxd (unknown)\n" + runtime.Version() + " " + platform + "\n"},
		{"released", &debug.BuildInfo{
			GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.4.0"},
			Deps: []*debug.Module{{Path: "github.com/nats-io/nats-server/v2", Version: "v2.15.2"}},
			Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
				{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "false"},
			},
		}, "qxd v1.4.0 (commit 0123456789ab, 2026-12-01T10:00:00Z)\ngo1.26.1 " + platform + ", nats-server v2.15.2\n"},
		{"checkout with changes", &debug.BuildInfo{
			GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "fedcba9876543210"}, {Key: "vcs.modified", Value: "true"}},
		}, "qxd (devel) (commit fedcba987654-dirty)\ngo1.26.1 " + platform + "\n"},
	} {
		if got := versionText(tc.bi); got != tc.want {
			t.Errorf("%s: versionText = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	for shell, want := range map[string]string{"bash": "complete -o default -F _qxd qxd", "zsh": "compdef _qxd qxd", "fish": "complete -c qxd"} {
		out, _, err := runLocal(t, "completion", shell)
		if err != nil || !strings.Contains(out, want) || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: err %v, script lacks %q or __complete:\n%s", shell, err, want, out)
		}
	}
	if _, _, err := runLocal(t, "completion", "powershell"); err == nil || !strings.Contains(err.Error(), "use bash, zsh or fish") {
		t.Errorf("completion powershell: err = %v, want one listing the shells", err)
	}
	for _, tc := range []struct {
		words []string
		want  []string // candidates, without descriptions
	}{
		{[]string{""}, []string{"server", "topic", "group", "txn", "cluster", "passwd", "bridge", "bench", "version", "completion"}},
		{[]string{"to"}, []string{"topic"}},
		{[]string{"topic", "c"}, []string{"create", "consume"}},
		{[]string{"--server", "nats://h:4222", "topic", "l"}, []string{"list", "ls"}},
		{[]string{"topic", "create", "orders", "--re"}, []string{"--replicas", "--retention", "--retention-bytes"}},
		{[]string{"topic", "add-partitions", "--"}, []string{"--num", "--help", "--server", "--log-level", "--log-format", "--connect-timeout", "--version", "--user", "--password", "--token", "--creds", "--tls-ca", "--tls-cert", "--tls-key"}},
		{[]string{"topic", "create", "--partitions", ""}, nil}, // a flag's value
		{[]string{"--server", ""}, nil},
		{[]string{"topic", "consume", "--", "-"}, nil},
	} {
		out, _, err := runLocal(t, append([]string{"__complete"}, tc.words...)...)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if c, _, _ := strings.Cut(line, "\t"); c != "" {
				got = append(got, c)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("__complete %q = %q, want %q", tc.words, got, tc.want)
		}
	}
}

// TestShellCompletion loads each completion script into its real shell (those
// installed) and completes with the qxd binary.
func TestShellCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the qxd binary; skipped with -short")
	}
	t.Parallel()
	bin := buildQxd(t)
	cases := []struct{ line, want string }{
		{"qxd topic cr", "create"},
		{"qxd group de", "describe delete"},
		{"qxd topic produce orders --print-o", "--print-offsets"},
		{"qxd --tls-ca ", "FILES"},
	}
	// Each script prints the candidates for the words of a line, space-separated,
	// or FILES where the shell would complete file names.
	shells := map[string]func(words []string) string{
		"bash": func(words []string) string {
			return `source <(qxd completion bash); COMP_WORDS=(` + quoteWords(words) + `); COMP_CWORD=` + strconv.Itoa(len(words)-1) +
				`; _qxd; if (( ${#COMPREPLY[@]} )); then echo "${COMPREPLY[*]}"; else echo FILES; fi`
		},
		"zsh": func(words []string) string {
			return `compdef() { :; }; source <(qxd completion zsh); _describe() { print -r -- "${(j: :)${(@)${(@P)2}%%:*}}"; }; _files() { print FILES; }; ` +
				`words=(` + quoteWords(words) + `); CURRENT=` + strconv.Itoa(len(words)) + `; _qxd`
		},
		"fish": func(words []string) string {
			return `qxd completion fish | source; set -l out (complete -C"` + strings.Join(words, " ") + `" | string replace -r '\t.*' ''); ` +
				`if string match -q -- '*/' $out[1]; echo FILES; else; echo (string join -- ' ' $out); end`
		},
	}
	for shell, script := range shells {
		path, err := exec.LookPath(shell)
		if err != nil {
			t.Logf("%s is not installed: its script is not run", shell)
			continue
		}
		for _, tc := range cases {
			words := strings.Split(tc.line, " ")
			cmd := exec.Command(path, "-c", script(words))
			cmd.Dir = t.TempDir() // one subdirectory, so that file names complete to "d/"
			if err := os.Mkdir(filepath.Join(cmd.Dir, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd.Env = append(cmd.Environ(), "PATH="+filepath.Dir(bin)+":/usr/bin:/bin", "HOME="+cmd.Dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", shell, err, out)
			}
			// fish sorts the candidates; the others keep qxd's order.
			got, want := strings.Fields(string(out)), strings.Fields(tc.want)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("completing %q in %s gave %q, want %q", tc.line, shell, got, tc.want)
			}
		}
	}
}

// quoteWords quotes words for a shell array.
func quoteWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	return strings.Join(q, " ")
}

// TestHelpExamples checks that every command's --help shows examples, and that
// each example names that command (or one below it) with flags it has.
func TestHelpExamples(t *testing.T) {
	t.Parallel()
	app := (&app{}).cli()
	commands := map[string]bool{}
	var visit func(path []string, cmds []*cli.Command)
	check := func(path []string) {
		name := strings.Join(path, " ")
		commands[name] = true
		lines := examples[name]
		if len(lines) == 0 {
			t.Errorf("%s has no examples", name)
			return
		}
		help, _, err := runLocal(t, append(path[1:], "--help")...)
		if err != nil || !strings.Contains(help, "EXAMPLES:\n   "+lines[0]+"\n") {
			t.Errorf("%s --help (err %v) lacks its examples:\n%s", name, err, help)
		}
		for _, line := range lines {
			words := shellWords(line)
			i := slices.Index(words, "qxd")
			if i < 0 {
				t.Errorf("example %q of %s does not run qxd", line, name)
				continue
			}
			if err := checkExample(app, words[i+1:], path[1:]); err != "" {
				t.Errorf("example %q of %s: %s", line, name, err)
			}
		}
	}
	visit = func(path []string, cmds []*cli.Command) {
		check(path)
		for _, c := range cmds {
			visit(append(slices.Clone(path), c.Name), c.Subcommands)
		}
	}
	visit([]string{"qxd"}, app.Commands)
	for name := range examples {
		if !commands[name] {
			t.Errorf("examples for %q, which is not a command", name)
		}
	}
}

// checkExample walks args, an example's words after "qxd", through the command
// tree: the commands it names must start with want, and each flag must be one of
// the command's or a global one. It returns what is wrong, or "".
func checkExample(app *cli.App, args, want []string) string {
	cmds, flags := app.Commands, app.Flags
	var path []string
	for i := 0; i < len(args); i++ {
		tok := args[i]
		if strings.HasPrefix(tok, "-") && len(tok) > 1 {
			name, _, hasValue := strings.Cut(strings.TrimLeft(tok, "-"), "=")
			f := findFlag(flags, name)
			if f == nil {
				f = findFlag(app.Flags, name)
			}
			if f == nil {
				return "no flag " + tok + " in qxd " + strings.Join(path, " ")
			}
			if !hasValue && takesValue(f) {
				i++
			}
			continue
		}
		if c := findCommand(cmds, tok); c != nil {
			path = append(path, c.Name)
			cmds, flags = c.Subcommands, c.Flags
		}
	}
	if len(path) < len(want) || !slices.Equal(path[:len(want)], want) {
		return "it runs qxd " + strings.Join(path, " ")
	}
	return ""
}

// shellWords splits a command line into words as a shell would, for the quoting
// the examples use; a pipe or redirection ends the words of the qxd command.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	for i, w := range words {
		words[i] = strings.TrimSuffix(strings.TrimPrefix(w, "<("), ")") // process substitution
	}
	for i, w := range words {
		if w == "|" || w == "<" || w == ">" || w == ";" {
			if slices.Contains(words[:i], "qxd") {
				return words[:i]
			}
			return shellWords(strings.Join(words[i+1:], " "))
		}
	}
	return words
}

func TestDidYouMean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"topc"}, `unknown command "topc" (did you mean 'qxd topic'?): run 'qxd --help' to list the commands`},
		{[]string{"topic", "crete", "orders"}, `unknown command "crete" (did you mean 'qxd topic create'?): run 'qxd topic --help' to list the commands`},
		{[]string{"group", "descibe", "g"}, `unknown command "descibe" (did you mean 'qxd group describe'?)`},
		{[]string{"consume", "orders"}, `unknown command "consume" (did you mean 'qxd topic consume' or 'qxd bench consume'?)`},
		{[]string{"produce", "orders"}, `(did you mean 'qxd topic produce' or 'qxd bench produce'?)`},
		{[]string{"xyzzy"}, `unknown command "xyzzy": run 'qxd --help' to list the commands`},
		{[]string{"topic", "create", "orders", "--partiton", "3"}, `flag provided but not defined: -partiton (did you mean --partitions?): run 'qxd topic create --help' for usage`},
		{[]string{"--sever", "nats://h:4222", "topic", "list"}, `flag provided but not defined: -sever (did you mean --server?)`},
	} {
		_, _, err := runLocal(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("qxd %s: err = %v, want one containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"topic", "topic", 0}, {"topc", "topic", 1}, {"crete", "create", 1}, {"tpoic", "topic", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}} {
		if d := editDistance(tc.a, tc.b); d != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}
