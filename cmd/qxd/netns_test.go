//go:build chaos

// This test is behind the chaos build tag (run it with
// `go test -tags chaos -run TestNetnsPartition -v ./cmd/qxd/`; `just chaos` runs
// TestChaos, which uses this file's network lab) because it currently
// fails intermittently: when the node cut off leads a partition, a batch can end up
// stored twice with a gap in the partition's offsets after the heal (the new
// leader's writer takes over while an append of the old term is still uncommitted).
// It is kept so that the bug stays visible until it is fixed.

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// netnsLab is a small network made of Linux network namespaces for one test, so that
// a node can be cut off from the others while the test still reaches it:
//
//   - one namespace per node (qxdtN-<id>) and a hub namespace (qxdth-<id>) holding a
//     bridge;
//   - a cluster link per node: a veth pair from the node's namespace into the hub's
//     bridge, 10.77.R.(128+N)/25 on the node's end. Nodes route to each other over
//     it (port 6222). Taking the hub's end down cuts the node off from its peers.
//   - a client link per node: a veth pair from the node's namespace into the test's
//     own namespace, 10.77.R.(4N+1)/30 on the test's end and 10.77.R.(4N+2)/30 on the
//     node's (port 4222). The test's clients use it, so a node cut off from its peers
//     stays reachable, as it would be for clients in its own network segment.
//
// R is picked at random among the 10.77.x.0/24 networks the test's namespace does not
// use. Only addresses inside the lab are assigned and only lab addresses are used;
// t.Cleanup deletes the namespaces and links, also when the test fails.
type netnsLab struct {
	t      *testing.T
	id     string
	octet  int
	nodes  []string // node namespaces
	hub    string
	client []string // the test-side ends of the client links
}

// run runs "ip args..." and returns its combined output.
func ipCmd(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// newNetnsLab builds the lab for n nodes, or skips the test (with the reason) where
// network namespaces cannot be made: not root, no ip tool, or "ip netns add" refused.
func newNetnsLab(t *testing.T, n int) *netnsLab {
	t.Helper()
	l, why := tryNetnsLab(t, n)
	if l == nil {
		t.Skip(why)
	}
	return l
}

// tryNetnsLab builds the lab for n nodes, or returns nil and why it cannot.
func tryNetnsLab(t *testing.T, n int) (*netnsLab, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, "network namespace tests need root (ip netns add); run as root to partition nodes"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, "network namespace tests need the ip tool (iproute2), which is not on PATH"
	}
	sweepStaleLabs(t)
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	l := &netnsLab{t: t, id: hex.EncodeToString(b)}
	l.hub = "qxdth-" + l.id
	if _, err := ipCmd("netns", "add", l.hub); err != nil {
		return nil, fmt.Sprintf("cannot make network namespaces here (%v); the partition test needs them", err)
	}
	t.Cleanup(l.destroy)

	// A 10.77.x.0/24 network this namespace has no address or route in.
	used, err := ipCmd("-4", "route", "show", "table", "all")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := ipCmd("-4", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range mrand.Perm(250) {
		prefix := fmt.Sprintf("10.77.%d.", o+1)
		if !strings.Contains(used, prefix) && !strings.Contains(addrs, prefix) && !strings.Contains(used, "10.77.0.0/16") && !strings.Contains(used, "10.0.0.0/8") {
			l.octet = o + 1
			break
		}
	}
	if l.octet == 0 {
		return nil, "no free 10.77.x.0/24 network for the lab: every one is in use here"
	}

	must := func(args ...string) {
		t.Helper()
		if _, err := ipCmd(args...); err != nil {
			t.Fatalf("build the network lab: %v", err)
		}
	}
	must("-n", l.hub, "link", "add", "br0", "type", "bridge")
	must("-n", l.hub, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("qxdt%d-%s", i+1, l.id)
		if _, err := ipCmd("netns", "add", ns); err != nil {
			t.Fatalf("build the network lab: %v", err)
		}
		l.nodes = append(l.nodes, ns)
		must("-n", ns, "link", "set", "lo", "up")

		// Cluster link: node ↔ hub bridge.
		hubEnd := fmt.Sprintf("h%d", i+1)
		must("-n", l.hub, "link", "add", hubEnd, "type", "veth", "peer", "name", "cs", "netns", ns)
		must("-n", l.hub, "link", "set", hubEnd, "master", "br0")
		must("-n", l.hub, "link", "set", hubEnd, "up")
		must("-n", ns, "addr", "add", l.clusterIP(i)+"/25", "dev", "cs")
		must("-n", ns, "link", "set", "cs", "up")

		// Client link: node ↔ the test's namespace.
		rootEnd := fmt.Sprintf("qx%sc%d", l.id, i+1)
		must("link", "add", rootEnd, "type", "veth", "peer", "name", "cl", "netns", ns)
		l.client = append(l.client, rootEnd)
		must("addr", "add", fmt.Sprintf("10.77.%d.%d/30", l.octet, 4*(i+1)+1), "dev", rootEnd)
		must("link", "set", rootEnd, "up")
		must("-n", ns, "addr", "add", l.clientIP(i)+"/30", "dev", "cl")
		must("-n", ns, "link", "set", "cl", "up")
	}
	return l, ""
}

// labName matches the namespaces a lab makes.
var labName = regexp.MustCompile(`^qxdt[0-9h]-[0-9a-f]{6}$`)

// sweepStaleLabs deletes the namespaces of labs whose test died without cleaning up
// (killed by a timeout, say): lab namespaces older than 15 minutes with no process in
// them. Their links go with them.
func sweepStaleLabs(t *testing.T) {
	out, err := ipCmd("netns", "list")
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !labName.MatchString(fields[0]) {
			continue
		}
		ns := fields[0]
		fi, err := os.Stat("/var/run/netns/" + ns)
		if err != nil || time.Since(fi.ModTime()) < 15*time.Minute {
			continue
		}
		if pids, err := ipCmd("netns", "pids", ns); err != nil || strings.TrimSpace(pids) != "" {
			continue
		}
		if _, err := ipCmd("netns", "del", ns); err == nil {
			t.Logf("deleted the stale lab namespace %s", ns)
		}
	}
}

// clientIP is node i's address on its client link.
func (l *netnsLab) clientIP(i int) string { return fmt.Sprintf("10.77.%d.%d", l.octet, 4*(i+1)+2) }

// clusterIP is node i's address on the cluster bridge.
func (l *netnsLab) clusterIP(i int) string { return fmt.Sprintf("10.77.%d.%d", l.octet, 128+i+1) }

// destroy deletes every link and namespace of the lab. Node processes must be gone
// first (their cleanup runs before this one), or a namespace outlives its name.
func (l *netnsLab) destroy() {
	for _, dev := range l.client {
		_, _ = ipCmd("link", "del", dev)
	}
	for _, ns := range append(l.nodes, l.hub) {
		if out, err := ipCmd("netns", "del", ns); err != nil {
			l.t.Logf("clean up: %v %s", err, out)
		}
	}
}

// layout places node i in its namespace, clients on its client link and routes on
// its cluster link.
func (l *netnsLab) layout() clusterLayout {
	var cl clusterLayout
	for i, ns := range l.nodes {
		cl.netns = append(cl.netns, ns)
		cl.client = append(cl.client, l.clientIP(i)+":4222")
		cl.cluster = append(cl.cluster, l.clusterIP(i)+":6222")
	}
	return cl
}

// cut takes node i's cluster link down at the hub: the node keeps running and its
// clients reach it, but it cannot reach its peers, nor they it.
func (l *netnsLab) cut(i int) error {
	_, err := ipCmd("-n", l.hub, "link", "set", fmt.Sprintf("h%d", i+1), "down")
	return err
}

// heal brings node i's cluster link back.
func (l *netnsLab) heal(i int) error {
	_, err := ipCmd("-n", l.hub, "link", "set", fmt.Sprintf("h%d", i+1), "up")
	return err
}

// cutPair cuts nodes i and j apart, and only them: a blackhole route to the
// other's cluster address in each one's namespace. Both keep their links to the
// bridge, so each still reaches the other nodes and they it.
func (l *netnsLab) cutPair(i, j int) error {
	if _, err := ipCmd("-n", l.nodes[i], "route", "add", "blackhole", l.clusterIP(j)+"/32"); err != nil {
		return err
	}
	_, err := ipCmd("-n", l.nodes[j], "route", "add", "blackhole", l.clusterIP(i)+"/32")
	return err
}

// healPair deletes cutPair's routes.
func (l *netnsLab) healPair(i, j int) error {
	_, err1 := ipCmd("-n", l.nodes[i], "route", "del", "blackhole", l.clusterIP(j)+"/32")
	_, err2 := ipCmd("-n", l.nodes[j], "route", "del", "blackhole", l.clusterIP(i)+"/32")
	if err1 != nil {
		return err1
	}
	return err2
}

// reach opens a TCP connection from node i's namespace to node j's cluster port
// (bash's /dev/tcp, 2 s at most) and says whether it could.
func (l *netnsLab) reach(i, j int) error {
	out, err := exec.Command("ip", "netns", "exec", l.nodes[i], "timeout", "2", "bash", "-c",
		fmt.Sprintf("exec 3<>/dev/tcp/%s/6222", l.clusterIP(j))).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// TestNetnsPartition runs three nodes in their own network namespaces and cuts node 3
// off from the other two for about ten seconds while producers run: a producer that
// can reach only node 3 (the minority) must get no acknowledgement, a producer on
// nodes 1 and 2 (the majority) must keep working, with no produce call stalled for
// longer than a leader election and a retry take, and after the link heals and node 3
// catches up, every acknowledged record is stored exactly once and no record twice
// (invariants 1 and 2 of docs/architecture.md across a network partition). Nor may
// a writer on nodes 1 and 2 take node 3's answers, from its old view of the streams
// it led, for its own failure after the heal. QXD_DRILL_BIN runs another build of
// qxd.
func TestNetnsPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a network of namespaces and starts three qxd processes; skipped with -short")
	}
	began := time.Now()
	lab := newNetnsLab(t, 3)
	bin := drillBin(t)
	cl := startProcCluster(t, bin, lab.layout())
	t.Logf("3 nodes ready in namespaces %v after %v", lab.nodes, time.Since(began).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()

	const topic = "netns-part"
	c := connect(t, cl.urls())
	if _, err := c.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: 6, Replicas: 3}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	n1, n2, n3 := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	only := []nats.Option{nats.IgnoreDiscoveredServers(), nats.DontRandomize()}
	newProducer := func(c *qxd.Client, opts ...qxd.ProducerOption) *qxd.Producer {
		p, err := c.NewProducer(append([]qxd.ProducerOption{qxd.Linger(time.Millisecond)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The majority producer reaches only nodes 1 and 2.
	ledA := newLedger()
	prodA := runProducer(ctx, newProducer(connect(t, n1.url()+","+n2.url(), only...), qxd.DeliveryTimeout(30*time.Second)),
		topic, "a", ledA, 40*time.Second)
	// The minority producer reaches only node 3. It stores one record before the cut,
	// so that it knows the topic.
	minority := connect(t, n3.url(), append(only, nats.Timeout(2*time.Second))...)
	prodB := newProducer(minority, qxd.DeliveryTimeout(3*time.Second), qxd.RequestTimeout(time.Second))
	ledB := newLedger()
	warm := &qxd.Record{Topic: topic, Key: []byte("w-k0"), Value: []byte("w-000000000")}
	if err := prodB.ProduceSync(ctx, warm); err != nil {
		t.Fatalf("the minority producer's first record, before the cut: %v", err)
	}
	ledB.acked[string(warm.Value)] = position{warm.Partition, warm.Offset}
	// A third producer may use every node but is connected to n3 (listed first, not
	// shuffled): it shows what a client of the cut-off node sees.
	ledC := newLedger()
	prodC := runProducer(ctx, newProducer(connect(t, n3.url()+","+n1.url()+","+n2.url(), nats.DontRandomize()), qxd.DeliveryTimeout(30*time.Second)),
		topic, "c", ledC, 40*time.Second)
	time.Sleep(2 * time.Second)

	if d, err := c.Admin().DescribeTopic(ctx, topic); err == nil {
		var led3 []int32
		for _, p := range d.Partitions {
			if p.Leader == "n3" {
				led3 = append(led3, p.Partition)
			}
		}
		t.Logf("n3 leads partitions %v before the cut", led3)
	}
	ackedA := ledA.ackedCount()
	if err := lab.cut(2); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	t.Logf("cut n3 off from n1 and n2 after %d majority records were acknowledged", ackedA)
	// Replies in flight at the cut may still arrive; give them a moment.
	time.Sleep(300 * time.Millisecond)

	minorityProd := runProducer(ctx, prodB, topic, "b", ledB, 5*time.Second)
	time.Sleep(10 * time.Second)
	minorityProd.halt()
	ledB.mu.Lock()
	bAcked, bProduced, bFailed, bErr := len(ledB.acked)-1, ledB.produced, ledB.failed, ledB.lastErr
	ledB.mu.Unlock()
	t.Logf("minority producer (n3 only): %d records produced, %d acknowledged, %d failed (last error: %v)", bProduced, bAcked, bFailed, bErr)
	if bAcked > 0 {
		t.Errorf("the minority node acknowledged %d records while cut off from a quorum", bAcked)
	}
	if bFailed == 0 {
		t.Errorf("no minority record failed: the minority producer was not exercised (last error: %v)", bErr)
	}
	duringA := ledA.ackedCount() - ackedA
	t.Logf("majority producer (n1, n2): %d records acknowledged during the cut", duringA)
	if duringA == 0 {
		t.Errorf("the majority producer got no acknowledgement during the %v cut", time.Since(cutAt).Round(time.Second))
	}

	if err := lab.heal(2); err != nil {
		t.Fatal(err)
	}
	healedAt := time.Now()
	t.Logf("healed n3's link after %v", healedAt.Sub(cutAt).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	prodA.halt()
	prodC.halt()

	// A leader election (JetStream's RAFT: up to about 9s) plus one request timeout
	// (5s) and a margin for a slow machine.
	const maxFailover = 25 * time.Second
	cutStall, _ := ledA.longestSince(cutAt)
	cutText, healText := ledA.stallText(cutAt), ledA.stallText(healedAt)
	ledA.mu.Lock()
	t.Logf("majority producer: %d acknowledged in all, %d failed (last error %v); longest produce call from the cut on: %s; from the heal on: %s",
		len(ledA.acked), ledA.failed, ledA.lastErr, cutText, healText)
	if ledA.failed > 0 {
		t.Errorf("%d majority records failed although n1 and n2 kept a quorum; last error: %v", ledA.failed, ledA.lastErr)
	}
	ledA.mu.Unlock()
	if cutStall > maxFailover {
		t.Errorf("a majority produce call took %v (more than %v) although n1 and n2 kept a quorum", cutStall.Round(time.Millisecond), maxFailover)
	}
	ledC.mu.Lock()
	cFailed := ledC.failed
	ledC.mu.Unlock()
	t.Logf("producer on every node but connected to n3: %d acknowledged, %d failed; longest produce call from the cut on: %s",
		ledC.ackedCount(), cFailed, ledC.stallText(cutAt))

	sctx, scancel := context.WithTimeout(ctx, 45*time.Second)
	defer scancel()
	if err := waitInSync(sctx, c, 3); err != nil {
		t.Errorf("n3 did not catch up within 45s of the heal: %v", err)
	} else {
		t.Logf("n3 caught up %v after the heal", time.Since(healedAt).Round(time.Millisecond))
	}
	// The cut-off node counts itself the leader of the streams it led until it
	// hears of the newer term, and answers appends to them, from its old view,
	// as soon as its routes are back: a writer on a healthy node must not take
	// that answer for its own failure (reloading, failing what it had in flight).
	stale := 0
	for _, n := range []*procNode{n1, n2} {
		for _, l := range strings.Split(n.log(1<<30), "\n") {
			if at, ok := logTime(l); ok && at.After(cutAt) && strings.Contains(l, "append failed") && strings.Contains(l, "wrong last sequence") {
				if stale++; stale <= 3 {
					t.Logf("%s: %s", n.name, l)
				}
			}
		}
	}
	if stale > 0 {
		t.Errorf("writers on the healthy nodes failed %d appends on a wrong-last-sequence answer after the cut: the cut-off node's stale answer, taken for the leader's", stale)
	}

	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	log, err := readLog(rctx, c, topic)
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]position{}
	for _, l := range []*ledger{ledA, ledB, ledC} {
		l.mu.Lock()
		for v, p := range l.acked {
			acked[v] = p
		}
		l.mu.Unlock()
	}
	rep := checkLog(log, acked)
	minorityStored := 0
	for _, recs := range log {
		for _, r := range recs {
			if strings.HasPrefix(r.value, "b-") {
				minorityStored++
			}
		}
	}
	t.Logf("log: %d records stored, %d never acknowledged (%d of them from the minority producer), %d duplicates, %d acknowledged records lost",
		rep.stored, rep.unacked, minorityStored, rep.duplicates, len(rep.lost))
	rep.report(t)
	if t.Failed() {
		dumpAnomalies(t, log, 5)
	}
	t.Logf("test took %v", time.Since(began).Round(time.Millisecond))
}

// TestCutOffNode cuts off, in network namespaces, the node that leads the groups
// bucket (where the group coordinator runs) for 15 s (QXD_CUT_HOLD) while clients
// are connected to it:
//
//   - a producer whose server list holds every node, connected to the cut-off node,
//     must continue through another node within cutOffMoveBound: the cut-off node
//     still answers its connection and its pings, so only the node can tell it;
//   - a client that knows only the cut-off node must stay on it (no reconnection
//     going round);
//   - the cut-off node's group coordinator must stop answering within
//     cutOffCoordBound of the cut: it can store nothing, and the majority elects
//     another;
//   - after the heal the node serves a client that knows only it;
//   - the heal adds no stall of its own: a record sent after it to a partition a
//     healthy node leads waits at most healStallBound for its acknowledgement (a
//     node whose RAFT groups campaigned while cut off would make that leader step
//     down at the heal, and the partition wait 4–9 s for an election).
//
// It reports when the producer moved, the longest acknowledgement wait of its
// records to a partition a healthy node leads, and when the cut-off coordinator
// last answered.
func TestCutOffNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a network of namespaces and starts three qxd processes; skipped with -short")
	}
	hold := cutHold(t)
	const (
		cutOffMoveBound  = 8 * time.Second
		cutOffCoordBound = 6 * time.Second
		healStallBound   = 2 * time.Second
		// afterHeal is how long records go on after the heal: the leaders
		// stepped down within 0.4 s of it when the cut-off node's terms ran ahead.
		afterHeal = 8 * time.Second
	)
	lab := newNetnsLab(t, 3)
	bin := drillBin(t)
	cl := startProcCluster(t, bin, lab.layout())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	const topic, groupID = "cut-off", "g-cut-off"
	admin := connect(t, cl.urls())
	if _, err := admin.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: 6, Replicas: 3}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	buckets := bucketLeaders(ctx, t, cl.urls())
	victim := cl.node(buckets[semantics.GroupsBucket])
	if victim == nil {
		t.Fatalf("the groups bucket's leader %q is not one of the nodes", buckets[semantics.GroupsBucket])
	}
	vi := slices.Index(cl.nodes, victim)
	// A partition a healthy node leads, and a key that goes there.
	keys := partitionKeys(6)
	healthyP := int32(-1)
	for p := range int32(6) {
		if l, err := leaderOf(ctx, admin, topic, p); err == nil && l != victim.name {
			healthyP = p
			break
		}
	}
	if healthyP < 0 {
		t.Fatalf("%s leads every partition", victim.name)
	}
	led := newLedger()
	grp := startGroup(ctx, t, cl.urls(), groupID, topic, 1, led)
	defer grp.halt()

	// The producer: every node in its list, the victim first.
	var urls []string
	urls = append(urls, victim.url())
	for _, n := range cl.nodes {
		if n != victim {
			urls = append(urls, n.url())
		}
	}
	pc := connect(t, strings.Join(urls, ","), nats.DontRandomize())
	prod, err := pc.NewProducer(qxd.Linger(0), qxd.DeliveryTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(ctx)
	// The client that knows only the victim.
	only := connect(t, victim.url(), nats.IgnoreDiscoveredServers(), nats.DontRandomize())
	if err := only.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	for wait := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if _, id := grp.members[0].Generation(); id != "" {
			break
		}
		if time.Since(wait) > 30*time.Second {
			t.Fatalf("the group's member did not join within 30 s")
		}
	}

	type ackRec struct {
		began time.Time
		took  time.Duration
	}
	var mu sync.Mutex
	var acks []ackRec
	var lastCoord, healedAt time.Time // the coordinator's last answer during the cut
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // one record in flight to the healthy partition
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := &qxd.Record{Topic: topic, Key: keys[healthyP], Value: fmt.Appendf(nil, "c-%09d", i)}
			began := time.Now()
			if err := prod.ProduceSync(ctx, r); err != nil {
				t.Errorf("produce %s: %v", r.Value, err)
				return
			}
			mu.Lock()
			acks = append(acks, ackRec{began, time.Since(began)})
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// The victim's coordinator: the member's heartbeats, sent to the victim alone.
	// Any answer is the coordinator acting (an error such as REBALANCE_IN_PROGRESS
	// too); a node that does not coordinate has no subscriber for it.
	hb, err := nats.Connect(victim.url(), nats.IgnoreDiscoveredServers(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			gen, id := grp.members[0].Generation()
			b, _ := json.Marshal(groups.HeartbeatRequest{Group: groupID, MemberID: id, Generation: gen})
			m, err := hb.Request(semantics.GroupSubject(semantics.GroupHeartbeat, groupID), b, time.Second)
			var resp groups.Response
			if err == nil && json.Unmarshal(m.Data, &resp) == nil {
				mu.Lock()
				if healedAt.IsZero() {
					lastCoord = time.Now()
				}
				mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	time.Sleep(2 * time.Second)
	if got := pc.Conn().ConnectedServerName(); got != victim.name {
		t.Fatalf("the producer is connected to %s, want %s", got, victim.name)
	}
	reconnectsBefore := only.Conn().Stats().Reconnects
	waitWatching(ctx, t, cl)

	if err := lab.cut(vi); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	t.Logf("cut %s (leads the groups bucket; buckets %v) off for %v", victim.name, buckets, hold)
	var movedAfter time.Duration
	for time.Since(cutAt) < hold {
		if movedAfter == 0 && pc.Conn().IsConnected() && pc.Conn().ConnectedServerName() != victim.name {
			movedAfter = time.Since(cutAt)
			t.Logf("the producer moved to %s %v after the cut", pc.Conn().ConnectedServerName(), movedAfter.Round(time.Millisecond))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := lab.heal(vi); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	healedAt = time.Now()
	mu.Unlock()
	t.Logf("healed %s's link", victim.name)
	reconnectsDuring := only.Conn().Stats().Reconnects - reconnectsBefore
	time.Sleep(afterHeal)
	close(stop)
	wg.Wait()

	mu.Lock()
	var longest, longestAfter time.Duration // begun before the heal, and after it
	for _, a := range acks {
		switch {
		case !a.began.Add(a.took).After(cutAt):
		case a.began.Before(healedAt):
			longest = max(longest, a.took)
		default:
			longestAfter = max(longestAfter, a.took)
		}
	}
	coordFor := lastCoord.Sub(cutAt)
	mu.Unlock()
	moved := "never"
	if movedAfter > 0 {
		moved = movedAfter.Round(time.Millisecond).String()
	}
	t.Logf("SUMMARY cut %v of %s: producer moved after %s; longest ack wait of p%d (healthy leader) %v before the heal, %v after; the cut-off coordinator last answered %v after the cut (during it); the client that knows only %s reconnected %d times during the cut; load %s",
		hold, victim.name, moved, healthyP, longest.Round(time.Millisecond), longestAfter.Round(time.Millisecond),
		coordFor.Round(time.Millisecond), victim.name, reconnectsDuring, loadAvg())
	if movedAfter == 0 || movedAfter > cutOffMoveBound {
		t.Errorf("the producer connected to the cut-off node moved %s after the cut, want within %v", moved, cutOffMoveBound)
	}
	if coordFor > cutOffCoordBound {
		t.Errorf("the cut-off node's group coordinator answered %v after the cut, want at most %v", coordFor.Round(time.Millisecond), cutOffCoordBound)
	}
	if reconnectsDuring > 1 {
		t.Errorf("the client that knows only the cut-off node reconnected %d times during the cut, want at most once", reconnectsDuring)
	}
	if longestAfter > healStallBound {
		t.Errorf("a record to p%d, which a healthy node leads, waited %v for its acknowledgement after the heal, want at most %v: the heal made its leader step down",
			healthyP, longestAfter.Round(time.Millisecond), healStallBound)
	}

	// After the heal the node serves a client that knows only it.
	pctx, pcancel := context.WithTimeout(ctx, 45*time.Second)
	defer pcancel()
	for {
		fresh, err := qxd.Connect(pctx, victim.url(), qxd.WithNATSOptions(nats.IgnoreDiscoveredServers()))
		if err == nil {
			err = fresh.Ping(pctx)
			fresh.Close()
		}
		if err == nil {
			t.Logf("%s serves a new client %v after the heal", victim.name, time.Since(healedAt).Round(time.Millisecond))
			break
		}
		if pctx.Err() != nil {
			t.Fatalf("%s does not serve a new client 45 s after the heal: %v", victim.name, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := only.Ping(pctx); err != nil {
		t.Errorf("the client that knows only %s, after the heal: %v", victim.name, err)
	}
}

// TestWholeClusterCut cuts every node off from the others for 15 s: no node has a
// majority, each tells its clients to move, and a client must not go round the
// nodes for as long as the cut lasts: one whose server list holds every node moves
// at most once per node, one that knows a single node does not reconnect. After
// the heal both are served again.
func TestWholeClusterCut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a network of namespaces and starts three qxd processes; skipped with -short")
	}
	lab := newNetnsLab(t, 3)
	bin := drillBin(t)
	cl := startProcCluster(t, bin, lab.layout())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	all := connect(t, cl.urls(), nats.DontRandomize())
	one := connect(t, cl.nodes[1].url(), nats.IgnoreDiscoveredServers())
	for _, c := range []*qxd.Client{all, one} {
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A topic made before the cut, and a producer that knows it: after the heal
	// its record waits only for the partition's leader and writer.
	if _, err := all.Admin().CreateTopic(ctx, "before-cut", qxd.TopicConfig{Partitions: 1, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	early, err := all.NewProducer(qxd.Linger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close(ctx)
	if err := early.ProduceSync(ctx, &qxd.Record{Topic: "before-cut", Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	waitWatching(ctx, t, cl)
	allBefore, oneBefore := all.Conn().Stats().Reconnects, one.Conn().Stats().Reconnects
	for i := range cl.nodes {
		if err := lab.cut(i); err != nil {
			t.Fatal(err)
		}
	}
	t.Log("cut every node off from the others for 15s")
	time.Sleep(15 * time.Second)
	allMoves, oneMoves := all.Conn().Stats().Reconnects-allBefore, one.Conn().Stats().Reconnects-oneBefore
	for i := range cl.nodes {
		if err := lab.heal(i); err != nil {
			t.Fatal(err)
		}
	}
	healedAt := time.Now()
	t.Logf("SUMMARY whole-cluster cut of 15s: the client of every node reconnected %d times, the client of one node %d times; load %s", allMoves, oneMoves, loadAvg())
	if allMoves > uint64(len(cl.nodes)) {
		t.Errorf("the client of every node reconnected %d times during the cut, want at most %d (once per node)", allMoves, len(cl.nodes))
	}
	if oneMoves > 0 {
		t.Errorf("the client of one node reconnected %d times during the cut, want none", oneMoves)
	}
	for _, n := range cl.nodes {
		for _, l := range strings.Split(n.log(1<<20), "\n") {
			if strings.Contains(l, "cut off") || strings.Contains(l, "told clients") || strings.Contains(l, "majority of") || strings.Contains(l, "cut from the cluster") {
				t.Logf("%s: %s", n.name, l)
			}
		}
	}
	pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
	defer pcancel()
	for _, c := range []*qxd.Client{all, one} {
		for {
			err := c.Ping(pctx)
			if err == nil {
				break
			}
			if pctx.Err() != nil {
				t.Fatalf("a client is not served 60 s after the heal: %v", err)
			}
		}
	}
	t.Logf("both clients served %v after the heal", time.Since(healedAt).Round(time.Millisecond))
	for {
		actx, acancel := context.WithTimeout(pctx, time.Second)
		err := early.ProduceSync(actx, &qxd.Record{Topic: "before-cut", Value: []byte("after")})
		acancel()
		if err == nil {
			break
		}
		if pctx.Err() != nil {
			t.Fatalf("the topic made before the cut takes no record 60 s after the heal: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("a record to the topic made before the cut stored %v after the heal", time.Since(healedAt).Round(time.Millisecond))
	// Every node held its RAFT groups from campaigning while cut off; after the
	// heal the cluster elects leaders and stores records again: a topic is made
	// and a record acknowledged. Each try is short, so that one sent before the
	// leaders are back does not hide for long when they came back.
	for {
		err := func() error {
			actx, acancel := context.WithTimeout(pctx, 3*time.Second)
			defer acancel()
			if _, err := all.Admin().CreateTopic(actx, "after-cut", qxd.TopicConfig{Partitions: 1, Replicas: 3}); err != nil && !errors.Is(err, semantics.ErrTopicExists) {
				return err
			}
			p, err := all.NewProducer()
			if err != nil {
				return err
			}
			defer p.Close(actx)
			return p.ProduceSync(actx, &qxd.Record{Topic: "after-cut", Value: []byte("v")})
		}()
		if err == nil {
			break
		}
		if pctx.Err() != nil {
			for _, n := range cl.nodes {
				for _, l := range strings.Split(n.log(1<<20), "\n") {
					if strings.Contains(l, "jetstream") {
						t.Logf("%s: %s", n.name, l)
					}
				}
			}
			t.Fatalf("the cluster stores no record 60 s after the heal: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("a record stored %v after the heal", time.Since(healedAt).Round(time.Millisecond))
	for _, n := range cl.nodes {
		for _, l := range strings.Split(n.log(1<<20), "\n") {
			if strings.Contains(l, "free to campaign") || strings.Contains(l, "reaches a majority") {
				t.Logf("%s: %s", n.name, l)
			}
		}
	}
}

// waitWatching waits until every node has heard a majority of the cluster answer
// it (it logs so once): only then does a node count itself cut off when the
// answers stop. Right after a cluster's start that can take a second or two. A
// build without the watch (QXD_DRILL_BIN) never says so: after 15 s it goes on.
func waitWatching(ctx context.Context, t *testing.T, cl *procCluster) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range cl.nodes {
		for !strings.Contains(n.log(1<<20), "a majority of the cluster answers this node") {
			if ctx.Err() != nil || time.Now().After(deadline) {
				t.Logf("node %s did not say that a majority of the cluster answers it (a build without the watch?)", n.name)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// cutHold is how long the cut-off tests hold a node cut off: QXD_CUT_HOLD, else
// 15 s.
func cutHold(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("QXD_CUT_HOLD")
	if s == "" {
		return 15 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("QXD_CUT_HOLD=%q: %v (use a Go duration such as 15s)", s, err)
	}
	return d
}
