package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestREADME runs the shell blocks of the README in order, as a new user copy-pasting
// them into terminals would, so the README stays true. The blocks run in a fresh
// directory with a freshly built qxd; `go build -o qxd ./cmd/qxd` and
// `go run ./cmd/qxd` use that build and `go test ./...` is left to the real suite.
//
// HTML comments before a block (invisible on the rendered page) say what a person
// does by hand:
//
//	<!-- test: background NAME -->  every line of the next block runs in a terminal
//	                                 of its own (a node, a group member); a node is
//	                                 waited for until it says it is listening
//	<!-- test: stop NAME -->         Ctrl-C in those terminals: each process gets
//	                                 SIGINT and must exit 0 within 20 s
//	<!-- test: needs TOOL -->        the next block needs a client a fresh machine
//	                                 lacks (kcat, python3-confluent-kafka; `just
//	                                 kafka-clients` installs them): it runs when
//	                                 the tool is there and is skipped, said in the
//	                                 log, when it is not
//
// A command followed by a comment line `# qxd: TEXT…` must fail, and its error must
// contain TEXT (up to the ellipsis).
func TestREADME(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs every README block against real nodes; skipped with -short")
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := readmeSteps(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	lockREADMEPorts(t)
	bin := buildQxd(t)
	r := newReadmeRun(t, bin)
	for _, s := range steps {
		if t.Failed() {
			break
		}
		switch s.kind {
		case "background":
			r.background(s)
		case "needs":
			if missing := readmeToolMissing(s.needs); missing != "" {
				t.Logf("README block at line %d skipped: %s", s.line, missing)
				continue
			}
			r.foreground(s)
		case "stop":
			r.stop(s)
		default:
			r.foreground(s)
		}
	}
}

// readmeStep is one thing a README reader does: run a block, run a block's lines in
// terminals of their own, or stop those terminals.
type readmeStep struct {
	kind  string // "run", "background", "stop" or "needs"
	name  string // the terminals' name, for background and stop
	needs string // the tool a "needs" block runs only with
	line  int    // the README line the block starts on
	text  string
}

var readmeDirective = regexp.MustCompile(`^<!-- test: (background|stop|needs) ([a-z0-9-]+) -->$`)

// readmeSteps splits a README into its shell blocks and the directives between them.
func readmeSteps(doc string) ([]readmeStep, error) {
	var steps []readmeStep
	var pending *readmeStep // a background directive waiting for its block
	var block *strings.Builder
	start := 0
	for i, line := range strings.Split(doc, "\n") {
		n := i + 1
		switch {
		case block != nil && line == "```":
			s := readmeStep{kind: "run", line: start, text: block.String()}
			if pending != nil {
				s.kind = pending.kind
				if pending.kind == "needs" {
					s.needs = pending.name
				} else {
					s.name = pending.name
				}
				pending = nil
			}
			steps = append(steps, s)
			block = nil
		case block != nil:
			block.WriteString(line + "\n")
		case line == "```sh":
			block, start = &strings.Builder{}, n+1
		case strings.HasPrefix(line, "<!-- test:"):
			m := readmeDirective.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("README line %d: unknown test directive %q", n, line)
			}
			if m[1] == "stop" {
				steps = append(steps, readmeStep{kind: "stop", name: m[2], line: n})
				continue
			}
			if m[1] == "needs" && readmeTools[m[2]] == nil {
				return nil, fmt.Errorf("README line %d: %q is not a tool the test knows how to look for", n, m[2])
			}
			pending = &readmeStep{kind: m[1], name: m[2], line: n}
		}
	}
	if block != nil {
		return nil, fmt.Errorf("README: the block from line %d never ends", start)
	}
	if pending != nil {
		return nil, fmt.Errorf("README line %d: a directive with no block after it", pending.line)
	}
	return steps, nil
}

// readmeTools are the tools a README block may need, each with how to tell whether
// this machine has it: a program on PATH or a module /usr/bin/python3 imports.
var readmeTools = map[string][]string{
	"kcat":                    {"kcat", "-V"},
	"python3-confluent-kafka": {"/usr/bin/python3", "-c", "import confluent_kafka"},
}

// readmeToolMissing says why a "needs" block cannot run here, or "" when it can.
func readmeToolMissing(tool string) string {
	probe := readmeTools[tool]
	if err := exec.Command(probe[0], probe[1:]...).Run(); err != nil {
		return fmt.Sprintf("%s is not installed here (%v); `just kafka-clients` installs it", tool, err)
	}
	return ""
}

// readmeRun is the reader's machine: a work directory, a shell state carried from one
// block to the next (exports, the current directory) and the terminals left running.
type readmeRun struct {
	t     *testing.T
	dir   string
	env   []string
	state string // a file the blocks source and rewrite: exports and the directory

	mu    sync.Mutex
	procs map[string][]*readmeProc
}

type readmeProc struct {
	line string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

func newReadmeRun(t *testing.T, bin string) *readmeRun {
	dir := t.TempDir()
	shims := t.TempDir()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH")
	}
	// `go` as the README uses it, on the test's build.
	shim := fmt.Sprintf(`#!/bin/sh
case "$1 $2 $3 $4" in
"build -o qxd ./cmd/qxd") cp %[1]q ./qxd; exit 0 ;;
esac
case "$1 $2" in
"run ./cmd/qxd") shift 2; exec %[1]q "$@" ;;
"test ./...") exit 0 ;;
esac
exec %[2]q "$@"
`, bin, goTool)
	if err := os.WriteFile(filepath.Join(shims, "go"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "QXD_") {
			continue // the reader's shell starts without qxd settings
		}
		if strings.HasPrefix(kv, "PATH=") {
			kv = "PATH=" + shims + ":" + strings.TrimPrefix(kv, "PATH=")
		}
		env = append(env, kv)
	}
	state := filepath.Join(t.TempDir(), "state.sh")
	if err := os.WriteFile(state, []byte("cd "+shellQuote(dir)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &readmeRun{t: t, dir: dir, env: env, state: state, procs: map[string][]*readmeProc{}}
	t.Cleanup(r.killAll)
	return r
}

// foreground runs a block in one shell, as pasted into a terminal: it must succeed.
func (r *readmeRun) foreground(s readmeStep) {
	t := r.t
	script := "set -eo pipefail\nsource " + shellQuote(r.state) + "\n" + expectFailures(s.text) +
		"\n{ export -p; echo cd \"$(printf '%q' \"$PWD\")\"; } > " + shellQuote(r.state) + "\n"
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir, cmd.Env = r.dir, r.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	began := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("README block at line %d failed: %v\n--- block ---\n%s--- output ---\n%s", s.line, err, s.text, out)
		return
	}
	t.Logf("README block at line %d ran in %v", s.line, time.Since(began).Round(time.Millisecond))
}

// expectFailures turns each command followed by a `# qxd: TEXT…` comment into a check
// that the command fails with TEXT in its error.
func expectFailures(block string) string {
	lines := strings.Split(block, "\n")
	for i := 0; i+1 < len(lines); i++ {
		want, ok := strings.CutPrefix(strings.TrimSpace(lines[i+1]), "# qxd: ")
		if !ok || strings.TrimSpace(lines[i]) == "" || strings.HasPrefix(strings.TrimSpace(lines[i]), "#") {
			continue
		}
		want, _, _ = strings.Cut(want, "…")
		lines[i] = fmt.Sprintf(`if out=$( %s 2>&1 ); then echo "README: expected this to fail: %s" >&2; exit 1; fi
case "$out" in *%s*) ;; *) echo "README: the error was not as the README shows: $out" >&2; exit 1 ;; esac`,
			lines[i], strings.ReplaceAll(lines[i], `"`, `\"`), shellQuote(strings.TrimSpace(want)))
	}
	return strings.Join(lines, "\n")
}

// background starts each line of a block as a process of its own and waits for the
// nodes among them to listen.
func (r *readmeRun) background(s readmeStep) {
	t := r.t
	var nodes []*readmeProc
	for _, line := range strings.Split(s.text, "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		script := "source " + shellQuote(r.state) + "\nexec " + line
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir, cmd.Env = r.dir, r.env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("README line %d: start %q: %v", s.line, line, err)
		}
		p := &readmeProc{line: line, cmd: cmd, out: out, done: make(chan struct{})}
		go func() { p.err = cmd.Wait(); close(p.done) }()
		r.mu.Lock()
		r.procs[s.name] = append(r.procs[s.name], p)
		r.mu.Unlock()
		if strings.Contains(line, " server") {
			nodes = append(nodes, p)
		}
	}
	deadline := time.After(2 * time.Minute)
	for _, p := range nodes {
		for !strings.Contains(p.out.String(), "listening on") {
			select {
			case <-p.done:
				t.Fatalf("README block at line %d: %q exited: %v\n%s", s.line, p.line, p.err, p.out.String())
			case <-deadline:
				t.Fatalf("README block at line %d: %q did not say it was listening within 2m\n%s", s.line, p.line, p.out.String())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if len(nodes) < len(r.procs[s.name]) {
		time.Sleep(2 * time.Second) // members join their group
	}
	t.Logf("README block at line %d: %d processes running as %q", s.line, len(r.procs[s.name]), s.name)
}

// stop presses Ctrl-C in every terminal of a name: each process must exit 0 in 20 s.
func (r *readmeRun) stop(s readmeStep) {
	t := r.t
	r.mu.Lock()
	procs := r.procs[s.name]
	delete(r.procs, s.name)
	r.mu.Unlock()
	if len(procs) == 0 {
		t.Fatalf("README line %d: nothing runs as %q to stop", s.line, s.name)
	}
	for _, p := range procs {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT)
	}
	for _, p := range procs {
		select {
		case <-p.done:
			if p.err != nil {
				t.Errorf("README line %d: %q exited with %v after Ctrl-C\n%s", s.line, p.line, p.err, tail(p.out.String(), 20))
			}
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			t.Errorf("README line %d: %q still ran 20 s after Ctrl-C\n%s", s.line, p.line, tail(p.out.String(), 20))
		}
	}
}

func (r *readmeRun) killAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, procs := range r.procs {
		for _, p := range procs {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			if r.t.Failed() {
				r.t.Logf("README terminal %q (%s):\n%s", name, p.line, tail(p.out.String(), 30))
			}
		}
	}
}

// readmePorts are the fixed addresses the README's commands use.
var readmePorts = []string{"127.0.0.1:4222", "127.0.0.1:4223", "127.0.0.1:4224", "127.0.0.1:6222", "127.0.0.1:6223", "127.0.0.1:6224",
	"127.0.0.1:9644", "127.0.0.1:9645", "127.0.0.1:9646"}

// lockREADMEPorts makes TestREADME runs on one machine take turns (two test runs at
// once would race for the README's fixed ports), then skips the test if something
// else holds one of those ports, such as a node the developer is running.
func lockREADMEPorts(t *testing.T) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "qxd-readme-test.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", f.Name(), err)
	}
	for _, addr := range readmePorts {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("the README's commands need %s, which is in use (%v): stop what listens there to run this test", addr, err)
		}
		l.Close()
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// tail is the last n lines of s.
func tail(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewBufferString(s))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// TestREADMEStepsNeeds checks how the README's directives become steps: a "needs"
// block names its tool, and a tool the test cannot look for is refused.
func TestREADMEStepsNeeds(t *testing.T) {
	doc := "<!-- test: needs kcat -->\n```sh\nkcat -L\n```\n\n```sh\nls\n```\n"
	steps, err := readmeSteps(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 || steps[0].kind != "needs" || steps[0].needs != "kcat" || steps[0].text != "kcat -L\n" || steps[1].kind != "run" || steps[1].needs != "" {
		t.Fatalf("steps %+v, want a kcat block that needs kcat, then a plain one", steps)
	}
	if _, err := readmeSteps("<!-- test: needs java -->\n```sh\njava\n```\n"); err == nil || !strings.Contains(err.Error(), `"java"`) {
		t.Fatalf("a block needing an unknown tool: err %v, want one naming it", err)
	}
}
