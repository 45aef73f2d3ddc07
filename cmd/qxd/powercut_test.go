package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/powercut"
	"github.com/qxd-io/qxd/semantics"
)

// This file holds the power-cut tests' helpers: qxd node processes whose --data
// is on a powercut file system (internal/powercut), so that a test can cut the
// power of a node and see what its disk kept. TestPowerCutOneNode is the short
// version that runs with every "go test"; the full set is in
// durability_chaos_test.go, behind the chaos build tag ("just durability").

// pcCluster is a cluster of node processes, each with its data on its own powercut
// file system.
type pcCluster struct {
	*procCluster
	fs   map[string]*powercut.FS // by node name
	sync string
}

// needPowercut skips t when the power-cut file system cannot be mounted here.
func needPowercut(t *testing.T) {
	t.Helper()
	if err := powercut.Available(); err != nil {
		t.Skipf("skipped: %v", err)
	}
}

// startPowercutCluster starts n node processes ("qxd server --sync sync"), one
// alone or three in a cluster, each with its data on a powercut file system, and
// waits until they are ready.
func startPowercutCluster(t *testing.T, bin string, n int, sync string) *pcCluster {
	t.Helper()
	needPowercut(t)
	return startNodes(t, bin, n, sync, true)
}

// startNodes starts n node processes ("qxd server --sync sync"), one alone or
// three in a cluster, with their data on powercut file systems (onFUSE) or in
// plain directories, and waits until they are ready.
func startNodes(t *testing.T, bin string, n int, sync string, onFUSE bool) *pcCluster {
	t.Helper()
	pc := &pcCluster{procCluster: &procCluster{}, fs: map[string]*powercut.FS{}, sync: sync}
	l := loopbackLayout(t, n)
	var peers []string
	for _, a := range l.cluster {
		peers = append(peers, "nats://"+a)
	}
	logDir := t.TempDir()
	if keep := os.Getenv("QXD_TEST_KEEP_LOGS"); keep != "" {
		// Logs survive the test, for reading after a failure.
		var err error
		if logDir, err = os.MkdirTemp(keep, strings.ReplaceAll(t.Name(), "/", "_")+"-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("node logs in %s", logDir)
	}
	cname := fmt.Sprintf("qxdpc-%08x", rand.Uint32())
	for i := range n {
		node := &procNode{name: fmt.Sprintf("n%d", i+1), bin: bin, client: l.client[i],
			data: filepath.Join(t.TempDir(), "qxd"), logDir: logDir, extra: []string{"--sync", sync}}
		if n > 1 {
			node.cluster, node.peers, node.cname = l.cluster[i], peers, cname
		}
		if onFUSE {
			f, err := powercut.Mount(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			// Registered before the cleanup that kills the nodes, so it runs after it.
			t.Cleanup(func() {
				if err := f.Unmount(); err != nil {
					t.Error(err)
				}
			})
			node.data = filepath.Join(f.Path(), "qxd")
			pc.fs[node.name] = f
		}
		pc.nodes = append(pc.nodes, node)
	}
	t.Cleanup(func() {
		for _, n := range pc.nodes {
			if err := n.kill(); err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			for _, n := range pc.nodes {
				t.Logf("last log lines of node %s (%s):\n%s", n.name, n.logPath, n.log(3000))
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := pc.startAll(ctx, pc.nodes...); err != nil {
		t.Fatal(err)
	}
	return pc
}

// startAll starts nodes and waits until each is ready and, in a cluster, until
// every node is up and in sync.
func (pc *pcCluster) startAll(ctx context.Context, nodes ...*procNode) error {
	for _, n := range nodes {
		if err := n.start(); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if err := pc.waitReady(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// cut cuts the power of nodes at one moment: each is frozen (SIGSTOP), so that no
// acknowledgement leaves it after the cut; then its file system drops what was not
// durable and fails every further operation; then the process is killed and the
// file system mounted again with what it kept. It returns a description for the
// log.
func (pc *pcCluster) cut(nodes ...*procNode) (string, error) {
	for _, n := range nodes {
		if err := n.signal(syscall.SIGSTOP); err != nil {
			return "", err
		}
	}
	var parts []string
	for _, n := range nodes {
		s := pc.fs[n.name].Cut()
		parts = append(parts, fmt.Sprintf("%s lost %d bytes written to %d files since their last fsync (%d writes, %d fsyncs since mount)",
			n.name, s.CutBytes, s.CutFiles, s.Writes, s.Syncs))
	}
	for _, n := range nodes {
		if err := n.kill(); err != nil {
			return "", err
		}
	}
	for _, n := range nodes {
		if err := pc.fs[n.name].Restart(); err != nil {
			return "", err
		}
	}
	return strings.Join(parts, "; "), nil
}

// pcOutcome is what a power-cut run found.
type pcOutcome struct {
	ackedAtCut int // records acknowledged before the cut
	acked      int // records acknowledged in the whole run
	found      int // acknowledged records found in the log afterwards
	rep        logReport
	ahead      []string // partitions whose committed group offset is past the log's end
	readErr    error    // the log could not be read
	quiet      bool     // the producer stopped before the cut (pcTopic.quiet)
}

func (o pcOutcome) lossShown() bool {
	return len(o.rep.lost) > 0 || len(o.ahead) > 0 || o.readErr != nil || len(o.rep.problems) > 0
}

func (o pcOutcome) String() string {
	s := fmt.Sprintf("%d acknowledged (%d before the cut), %d of them found, %d lost, %d duplicates, %d other problems (gaps, order, misplaced); committed group offsets ahead of the log in %d partitions",
		o.acked, o.ackedAtCut, o.found, len(o.rep.lost), o.rep.duplicates, len(o.rep.problems), len(o.ahead))
	if o.readErr != nil {
		s += "; the log could not be read: " + o.readErr.Error()
	}
	return s
}

// pcScenario names a power-cut scenario.
type pcScenario string

const (
	cutOneNode   pcScenario = "one node"
	cutAllThree  pcScenario = "three nodes cut at once"
	cutWithPause pcScenario = "one node cut while another is paused"
)

// runPowercut runs one power-cut scenario with nodes started with --sync sync: a
// keyed producer (acks=all, idempotent) and a two-member group run while the power
// is cut; the cut nodes restart on what their disks kept; then the log is read and
// checked against what was acknowledged.
//
// With a sync interval the cut must come before nats-server first syncs the
// topic's stores (between half an interval and an interval after it creates
// them), or the run fails as unable to tell what an unsynced append costs.
//
// In the paused-node scenario the node to be cut is made the leader of every
// partition and its file system written back (powercut.FS.Writeback) just before
// the other node is paused: the cut node then comes back with the topic's
// streams, RAFT logs and everything acknowledged before the pause, and loses,
// unless it synced them, exactly the appends made after it.
func runPowercut(t *testing.T, bin string, sc pcScenario, sync string, load time.Duration) pcOutcome {
	t.Helper()
	return runPowercutTopic(t, bin, sc, sync, load, pcTopic{})
}

// pcTopic varies the topic a power-cut run produces to: its durability, and a
// config change (alter-config) made half-way through the load.
type pcTopic struct {
	durability string
	alter      map[string]string
	// quiet: the producer stops before the alter, and the power is cut as soon
	// as the alter returns, so that only the alter can have made the records
	// acknowledged before it durable.
	quiet bool
}

// runPowercutTopic is runPowercut with the topic's durability and a config change
// half-way through the load.
func runPowercutTopic(t *testing.T, bin string, sc pcScenario, sync string, load time.Duration, tc pcTopic) pcOutcome {
	t.Helper()
	began := time.Now()
	n := 3
	if sc == cutOneNode {
		n = 1
	}
	pc := startPowercutCluster(t, bin, n, sync)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const topic, groupID, partitions = "powercut", "g-powercut", 4
	c := connect(t, pc.urls())
	if _, err := c.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: partitions, Replicas: n, Durability: tc.durability}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	created := time.Now()
	// The cut must come before nats-server first syncs the topic's stores, half a
	// sync interval after creating them at the earliest; they were created up to a
	// few seconds before CreateTopic returned.
	syncBy := time.Time{}
	if iv, err := time.ParseDuration(sync); err == nil {
		syncBy = created.Add(iv/2 - 5*time.Second)
	}
	led := newLedger()
	grp := startGroup(ctx, t, pc.urls(), groupID, topic, 2, led)
	// Pings every second, so that a producer connected to a paused node moves on.
	prodClient := connect(t, pc.urls(), nats.PingInterval(time.Second), nats.MaxPingsOutstanding(3))
	prod := startProducer(ctx, t, prodClient, topic, "p", led, qxd.DeliveryTimeout(30*time.Second))
	if tc.alter != nil {
		time.Sleep(load / 2)
		if tc.quiet {
			prod.halt()
		}
		before := led.ackedCount()
		began := time.Now()
		if _, err := c.Admin().AlterTopicConfig(ctx, topic, tc.alter); err != nil {
			t.Fatalf("alter topic %v: %v", tc.alter, err)
		}
		t.Logf("altered the topic (%v) in %v, after %d acknowledged records", tc.alter, time.Since(began).Round(time.Millisecond), before)
		if !tc.quiet {
			time.Sleep(load / 2)
		}
	} else {
		time.Sleep(load)
	}

	out := pcOutcome{quiet: tc.quiet}
	var victims []*procNode
	switch sc {
	case cutOneNode, cutAllThree:
		victims = pc.nodes
	case cutWithPause:
		victim, paused := pc.nodes[0], pc.nodes[1]
		// n1 leads every partition, so that pausing n2 moves no leader: a node that
		// becomes a stream's leader snapshots its RAFT log, and nats-server writes
		// a snapshot with an fsync whatever --sync says. Had n1 done that after the
		// writeback below, it would come back with a snapshot ahead of its store,
		// wait for a leader to catch it up, and the partition would stand still
		// until n3 returned with the records instead of losing them.
		for p := range int32(partitions) {
			lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
			err := preferLeader(lctx, pc.urls(), semantics.StreamName(topic, p), victim.name)
			lcancel()
			if err != nil {
				t.Fatalf("move the leader of partition %d: %v", p, err)
			}
		}
		time.Sleep(time.Second) // the new leaders' snapshots
		// What the kernel writes back in the background, n1 keeps: its copy of the
		// topic's streams and RAFT logs as they are now. What comes after is
		// durable only if n1 syncs it.
		if err := pc.fs[victim.name].Writeback(); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote back node %s's file system after %d acknowledged records", victim.name, led.ackedCount())
		if err := paused.signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Logf("paused node %s (SIGSTOP); producing on the other two for a while", paused.name)
		atPause := ackedPerPartition(led)
		time.Sleep(load / 2)
		// Cut only once every partition has records the paused node lacks: a
		// producer connected to it needs seconds to move on, and a partition it
		// led a new leader. Before the first sync, where there is one.
		limit := time.Now().Add(20 * time.Second)
		if !syncBy.IsZero() && syncBy.Add(-3*time.Second).Before(limit) {
			limit = syncBy.Add(-3 * time.Second)
		}
		for time.Now().Before(limit) && grew(atPause, ackedPerPartition(led)) < len(atPause) {
			time.Sleep(250 * time.Millisecond)
		}
		now := ackedPerPartition(led)
		t.Logf("%d records acknowledged while node %s was paused, in %d of %d partitions", total(now)-total(atPause), paused.name, grew(atPause, now), len(atPause))
		victims = []*procNode{victim}
		defer func() { _ = paused.signal(syscall.SIGCONT) }()
	}
	if !syncBy.IsZero() && time.Now().After(syncBy) {
		t.Fatalf("the cut would come %v after the topic was created, when its stores may have been synced (from half the interval on with --sync %s): this run cannot show what an unsynced append costs; use a longer interval", time.Since(created).Round(time.Millisecond), sync)
	}
	out.ackedAtCut = led.ackedCount()
	what, err := pc.cut(victims...)
	if err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	t.Logf("power cut (%s, --sync %s) after %d acknowledged records: %s", sc, sync, out.ackedAtCut, what)
	if sc == cutWithPause {
		// The third node is the one that may hold acknowledged records the cut
		// node lost. Pause it before the cut node comes back, so that it cannot
		// hand them back, and resume the node that was paused through the
		// acknowledgements: with the cut node it forms the majority.
		third, paused := pc.nodes[2], pc.nodes[1]
		if err := third.signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = third.signal(syscall.SIGCONT) }()
		if err := paused.signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		t.Logf("paused node %s and resumed node %s: %s and %s will be the majority", third.name, paused.name, victims[0].name, paused.name)
	}
	rctx, rcancel := context.WithTimeout(ctx, 90*time.Second)
	defer rcancel()
	if err := pc.startAll(rctx, victims...); err != nil {
		t.Fatalf("restart after the power cut: %v", err)
	}
	t.Logf("restarted %d node(s) on what their disks kept, ready %v after the cut", len(victims), time.Since(cutAt).Round(time.Millisecond))
	if sc == cutWithPause {
		third, paused := pc.nodes[2], pc.nodes[1]
		// Only a majority that carries on (elects leaders, appends) without the
		// third node can lose what the third holds; that takes a while under load.
		before, switched := ackedPerPartition(led), time.Now()
		time.Sleep(2 * load)
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if grew(before, ackedPerPartition(led)) == len(before) {
				break
			}
		}
		now := ackedPerPartition(led)
		t.Logf("the majority of %s and %s acknowledged %d records, in %d of %d partitions, in %v",
			victims[0].name, paused.name, total(now)-total(before), grew(before, now), len(before), time.Since(switched).Round(time.Millisecond))
		if err := third.signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		t.Logf("resumed node %s", third.name)
	}
	time.Sleep(2 * time.Second) // produce some more after the restart
	prod.halt()
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	if err := waitRead(wctx, led); err != nil {
		t.Logf("the group after the restart: %v", err)
	}
	wcancel()
	grp.halt()

	led.mu.Lock()
	out.acked = len(led.acked)
	acked := make(map[string]position, len(led.acked))
	for k, v := range led.acked {
		acked[k] = v
	}
	produced, failed, lastErr := led.produced, led.failed, led.lastErr
	led.mu.Unlock()
	t.Logf("%d records produced, %d acknowledged, %d failed (last error: %v)", produced, out.acked, failed, lastErr)

	if n > 1 {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		if err := waitInSync(sctx, c, n); err != nil {
			t.Logf("before reading the log: %v", err)
		}
		scancel()
	}
	lctx, lcancel := context.WithTimeout(ctx, 60*time.Second)
	defer lcancel()
	var log map[int32][]storedRecord
	if _, err := c.Admin().DescribeTopic(lctx, topic); errors.Is(err, semantics.ErrUnknownTopic) {
		out.readErr = err // the topic itself was lost
	} else if log, err = readLog(lctx, c, topic); err != nil {
		out.readErr = err
	}
	out.rep = checkLog(log, acked)
	out.found = out.acked - len(out.rep.lost)
	if d, err := c.Admin().DescribeGroup(lctx, groupID); err != nil {
		t.Logf("describe group: %v", err)
	} else {
		for _, p := range d.Partitions {
			if p.Committed > p.HighWatermark {
				out.ahead = append(out.ahead, fmt.Sprintf("partition %d: committed %d, high watermark %d", p.Partition, p.Committed, p.HighWatermark))
			}
		}
	}
	t.Logf("RESULT %s, --sync %s: %v (test took %v)", sc, sync, out, time.Since(began).Round(time.Millisecond))
	return out
}

// ackedPerPartition counts led's acknowledged records per partition, every
// partition it has seen included.
func ackedPerPartition(led *ledger) map[int32]int {
	led.mu.Lock()
	defer led.mu.Unlock()
	n := map[int32]int{}
	for _, p := range led.acked {
		n[p.partition]++
	}
	return n
}

// grew counts the partitions of before whose count is higher in now.
func grew(before, now map[int32]int) int {
	n := 0
	for p, c := range before {
		if now[p] > c {
			n++
		}
	}
	return n
}

func total(m map[int32]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// checkDurable fails t unless the run lost nothing acknowledged.
func checkDurable(t *testing.T, o pcOutcome) {
	t.Helper()
	if o.readErr != nil {
		t.Error(o.readErr)
	}
	o.rep.report(t)
	for _, a := range o.ahead {
		t.Errorf("committed group offset ahead of the log: %s", a)
	}
	if o.acked <= o.ackedAtCut && !o.quiet {
		t.Errorf("nothing was acknowledged after the restart (%d before the cut, %d in all)", o.ackedAtCut, o.acked)
	}
}

// checkLossShown fails t unless the weakened setting lost something: the proof
// that the test can see a loss.
func checkLossShown(t *testing.T, o pcOutcome) {
	t.Helper()
	if !o.lossShown() {
		t.Errorf("a node syncing lazily lost nothing in a power cut (%v): the test cannot tell durable from lazy", o)
	}
}

// TestPowerCutOneNode is the short power-cut test: one node that syncs every
// append, its power cut while a producer and a group run; after the restart
// every acknowledged record is there once, in order, offsets dense, and no
// committed offset is past the log's end (docs/architecture.md, invariant 1).
func TestPowerCutOneNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a qxd process on a FUSE file system; skipped with -short")
	}
	needPowercut(t)
	o := runPowercut(t, buildQxd(t), cutOneNode, "always", 3*time.Second)
	checkDurable(t, o)
}
