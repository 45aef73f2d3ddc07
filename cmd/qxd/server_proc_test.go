package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// The tests of this file run "qxd server" as real processes, for what only a
// process shows: a lock left by a killed process, exit codes, how long a stop takes.

// TestServerDataDirLockProcess runs a "qxd server" process and a second one on the
// same data dir: the second exits 1 with one line naming the directory and the
// first's PID. After the first is SIGKILLed (no clean shutdown, so no unlock), a
// new node starts on the data dir at once.
func TestServerDataDirLockProcess(t *testing.T) {
	t.Parallel()
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

// startSingle starts the node as a single node: one without a cluster address
// has no cluster flags.
func (n *procNode) startSingle() error {
	return n.start()
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

// stoppingCluster starts a three-process cluster for a stop test (skipped with
// -short) with a three-replica topic of three partitions, and returns it with a
// context for the test.
func stoppingCluster(t *testing.T, topic string) (*procCluster, context.Context) {
	t.Helper()
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three qxd processes; skipped with -short")
	}
	cl := startProcCluster(t, buildQxd(t), loopbackLayout(t, 3))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	c := connect(t, cl.urls())
	defer c.Close()
	if _, err := c.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: 3, Replicas: 3}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	return cl, ctx
}

// TestProcessClusterStopAll stops the three nodes of a cluster one after another
// with SIGTERM. Every stop is a clean stop, the last ones too, whose quorum goes
// with the nodes before them: each exits 0 within a few seconds, and a node that
// could not hand a leadership off says so in one warning.
func TestProcessClusterStopAll(t *testing.T) {
	cl, _ := stoppingCluster(t, "stop-all")

	// A stop is bounded by a few seconds; more is allowed here only for a loaded
	// machine, far below the 10-17 s a stop without quorum used to wait.
	const bound = 8 * time.Second
	for i, n := range cl.nodes {
		took, code, err := n.stopTimed(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("stop %s (%d of 3): exit %d after %v", n.name, i+1, code, took.Round(time.Millisecond))
		if code != 0 {
			t.Errorf("node %s exited %d on SIGTERM, want 0:\n%s", n.name, code, n.log(3000))
		}
		if took > bound {
			t.Errorf("node %s took %v to stop, want at most %v:\n%s", n.name, took.Round(time.Millisecond), bound, n.log(3000))
		}
	}
	last := cl.nodes[2].log(1 << 20)
	if warns := strings.Count(last, "level=WARN msg=\"leaderships not handed off"); warns != 1 {
		t.Errorf("last node logged %d warnings of leaderships not handed off, want 1:\n%s", warns, last)
	}
}

// TestProcessClusterStopAfterPeersKilled: the last node of a cluster whose
// other nodes were killed (SIGKILL: no goodbye, so JetStream still counts them
// online for a while) stops as cleanly and as promptly as one whose peers
// stopped, and does not wait out its shutdown timeout for appends and
// checkpoints that cannot reach a quorum. The stop begins right after the kills,
// as when an operator stops a node during a crash of the others: this node
// finds out that it is the last one up before or during its stop (its routes to
// the dead peers close a moment after the kills), and both must be prompt.
func TestProcessClusterStopAfterPeersKilled(t *testing.T) {
	cl, _ := stoppingCluster(t, "peers-killed")
	for _, n := range cl.nodes[1:] {
		if err := n.kill(); err != nil {
			t.Fatal(err)
		}
	}
	last := cl.nodes[0]
	const bound = 8 * time.Second
	took, code, err := last.stopTimed(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stop %s after its peers were killed: exit %d after %v", last.name, code, took.Round(time.Millisecond))
	if code != 0 || took > bound {
		t.Errorf("node %s exited %d after %v on SIGTERM, want 0 within %v:\n%s", last.name, code, took.Round(time.Millisecond), bound, last.log(3000))
	}
}

// stopTimed sends SIGTERM and waits for the process to exit, at most timeout
// (then it kills it). It returns how long the stop took and the exit code.
func (n *procNode) stopTimed(timeout time.Duration) (time.Duration, int, error) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return 0, 0, errors.New("node " + n.name + " is not running")
	}
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = n.kill()
		return time.Since(start), -1, errors.New("node " + n.name + " did not stop within " + timeout.String() + " of SIGTERM; killed it")
	}
	took := time.Since(start)
	n.mu.Lock()
	n.cmd = nil
	n.mu.Unlock()
	return took, cmd.ProcessState.ExitCode(), nil
}

// The leader rebalancing flags reach the node: a check interval of zero is refused
// with one line, unless automatic rebalancing is off.
// A bad --auto-repair-delay or --scrub-interval is refused with one line naming
// the flag, before the data dir is touched; --scrub-interval 0 turns the scrub off.
func TestServerLeaderRebalanceFlags(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out syncBuffer
	err := run(ctx, []string{"qxd", "server", "--listen", "127.0.0.1:0", "--data", t.TempDir(),
		"--leader-imbalance-check-interval", "0s"}, strings.NewReader(""), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "leader imbalance check interval") || strings.Contains(err.Error(), "\n") {
		t.Errorf("qxd server --leader-imbalance-check-interval 0s: %v, want one line about the interval", err)
	}
	dir := t.TempDir()
	err = run(ctx, []string{"qxd", "server", "--listen", "127.0.0.1:0", "--data", dir,
		"--auto-repair-delay", "-5s"}, strings.NewReader(""), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "--auto-repair-delay") || strings.Contains(err.Error(), "\n") {
		t.Errorf("qxd server --auto-repair-delay -5s: %v, want one line naming the flag", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("a refused --auto-repair-delay left %d entries in the data dir", len(entries))
	}
	for _, c := range []struct{ value, want string }{
		{"-5s", "scrub interval -5s"},
		{"10ms", "scrub interval 10ms"},
		{"daily", `--scrub-interval "daily" is not a duration`},
	} {
		dir := t.TempDir()
		err = run(ctx, []string{"qxd", "server", "--listen", "127.0.0.1:0", "--data", dir,
			"--scrub-interval", c.value}, strings.NewReader(""), &out, &out)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--scrub-interval") || strings.Contains(err.Error(), "\n") {
			t.Errorf("qxd server --scrub-interval %s: %v, want one line naming the flag (%q)", c.value, err, c.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Errorf("a refused --scrub-interval %s left %d entries in the data dir", c.value, len(entries))
		}
	}
	s := startServer(t, "--listen", "127.0.0.1:0", "--data", t.TempDir(),
		"--auto-leader-rebalance=false", "--leader-imbalance-check-interval", "0s", "--scrub-interval", "0")
	if err := s.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// A bad --scrub-rate (flag or QXD_SCRUB_RATE) is refused with one line naming the
// flag, before the data dir is touched.
func TestServerScrubRateRefused(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, value := range []string{"-1MiB", "fast", "8 apples", "1.5B", ""} {
		dir := t.TempDir()
		var out syncBuffer
		err := run(ctx, []string{"qxd", "server", "--listen", "127.0.0.1:0", "--data", dir, "--kafka-listen", "", "--http-listen", "",
			"--scrub-rate", value}, strings.NewReader(""), &out, &out)
		if err == nil || !strings.Contains(err.Error(), "--scrub-rate") || !strings.Contains(err.Error(), fmt.Sprintf("%q", value)) || strings.Contains(err.Error(), "\n") {
			t.Errorf("qxd server --scrub-rate %q: %v, want one line naming the flag and the value", value, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Errorf("a refused --scrub-rate %q left %d entries in the data dir", value, len(entries))
		}
	}
}

// TestProcessClusterFirstStart starts two of the three "qxd server" processes of a
// brand-new cluster (each with the same --peers list, itself included): both are
// ready without the third, logging no error for it; then the third joins.
func TestProcessClusterFirstStart(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts qxd processes; skipped with -short")
	}
	bin := buildQxd(t)
	l := loopbackLayout(t, 3)
	var peers []string
	for _, a := range l.cluster {
		peers = append(peers, "nats://"+a)
	}
	logDir := t.TempDir()
	cname := fmt.Sprintf("qxdfirst-%08x", rand.Uint32()) // apart from other tests' clusters
	c := &procCluster{}
	for i := range l.client {
		n := &procNode{name: "n" + strconv.Itoa(i+1), bin: bin, client: l.client[i], cluster: l.cluster[i],
			peers: peers, cname: cname, data: t.TempDir(), logDir: logDir}
		c.nodes = append(c.nodes, n)
		t.Cleanup(func() { _ = n.kill() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	began := time.Now()
	for _, n := range c.nodes[:2] {
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes[:2] {
		if err := c.waitReady(ctx, n); err != nil {
			t.Fatalf("two of three nodes of a new cluster: %v", err)
		}
	}
	t.Logf("two of three nodes of a new cluster ready after %v", time.Since(began).Round(time.Millisecond))
	for _, n := range c.nodes[:2] {
		if log := n.log(1 << 20); strings.Contains(log, "level=ERROR") {
			t.Errorf("node %s logged an error while the third node was not up:\n%s", n.name, log)
		}
	}
	if err := c.nodes[2].start(); err != nil {
		t.Fatal(err)
	}
	if err := c.waitReady(ctx, c.nodes[2]); err != nil {
		t.Fatalf("the third node: %v", err)
	}
}

// TestProcNodeStartsWhenItsPortIsTaken starts node processes on a client address
// something else holds, as another test or test run may between the choice of a
// free port and the node's bind: held for a moment (a probe of whether it is
// free), the node starts on it once it is let go; held for good, on a fresh port.
func TestProcNodeStartsWhenItsPortIsTaken(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs qxd processes; skipped with -short")
	}
	bin := buildQxd(t)
	for _, c := range []struct {
		name string
		hold time.Duration // 0: for good
	}{{"for a moment", 700 * time.Millisecond}, {"for good", 0}} {
		t.Run(c.name, func(t *testing.T) {
			addr := qxdtest.FreeAddr(t)
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if c.hold > 0 {
				time.AfterFunc(c.hold, func() { l.Close() })
			}
			n := &procNode{name: "taken", bin: bin, client: addr, data: t.TempDir(), logDir: t.TempDir()}
			t.Cleanup(func() { _ = n.kill() })
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := n.start(); err != nil {
				t.Fatal(err)
			}
			if err := n.waitListening(ctx); err != nil {
				t.Fatalf("node on %s, held %s: %v", addr, c.name, err)
			}
			if moved := n.client != addr; moved != (c.hold == 0) {
				t.Errorf("node listens on %s; it was to listen on %s, held %s", n.client, addr, c.name)
			}
		})
	}
}
