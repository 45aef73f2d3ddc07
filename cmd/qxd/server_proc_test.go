package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
)

// The tests of this file run "qxd server" as real processes, for what only a
// process shows: a lock left by a killed process, exit codes, how long a stop takes.

// TestServerDataDirLockProcess runs a "qxd server" process and a second one on the
// same data dir: the second exits 1 with one line naming the directory and the
// first's PID. After the first is SIGKILLed (no clean shutdown, so no unlock), a
// new node starts on the data dir at once.
func TestServerDataDirLockProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs qxd processes; skipped with -short")
	}
	bin := buildQxd(t)
	dir := t.TempDir()
	logDir := t.TempDir()
	first := &procNode{name: "first", bin: bin, client: qxdtest.FreeAddr(t), data: dir, logDir: logDir}
	t.Cleanup(func() { _ = first.kill() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := first.startSingle(); err != nil {
		t.Fatal(err)
	}
	if err := first.waitListening(ctx); err != nil {
		t.Fatal(err)
	}

	out, err := exec.CommandContext(ctx, bin, "server", "--listen", qxdtest.FreeAddr(t), "--data", dir).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second qxd server on %s: %v, want exit status 1; output:\n%s", dir, err, out)
	}
	pid := strconv.Itoa(first.pid())
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, strconv.Quote(dir)) || !strings.Contains(last, "process "+pid) {
		t.Errorf("second qxd server's error %q: want one line naming %q and process %s; output:\n%s", last, dir, pid, out)
	}

	if err := first.kill(); err != nil {
		t.Fatal(err)
	}
	again := &procNode{name: "again", bin: bin, client: qxdtest.FreeAddr(t), data: dir, logDir: logDir}
	t.Cleanup(func() { _ = again.kill() })
	start := time.Now()
	if err := again.startSingle(); err != nil {
		t.Fatal(err)
	}
	if err := again.waitListening(ctx); err != nil {
		t.Fatalf("start on the data dir of a SIGKILLed node: %v", err)
	}
	t.Logf("restarted on the data dir of a SIGKILLed node in %v", time.Since(start).Round(time.Millisecond))
}

// startSingle starts the node as a single node (no cluster flags).
func (n *procNode) startSingle() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.starts++
	n.logPath = filepath.Join(n.logDir, n.name+"-"+strconv.Itoa(n.starts)+".log")
	f, err := os.Create(n.logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(n.bin, "server", "--name", n.name, "--listen", n.client, "--data", n.data)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	n.cmd, n.exited = cmd, exited
	return nil
}

// pid is the node's current process id, 0 when it is not running.
func (n *procNode) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}
