//go:build chaos

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
)

// TestChaos runs a three-process cluster for QXD_CHAOS_DURATION (default 2m) while a
// keyed producer and a three-member group run throughout, and a seeded random loop
// disrupts one node at a time: SIGKILL and restart on its data, SIGSTOP for a few
// seconds or for 15 s then SIGCONT, a clean restart (SIGTERM, as a rolling upgrade
// does), or (as root, where network namespaces can be made) cut the node off from
// its peers for a few seconds. The node is, a third of the time each, the one the
// producer is connected to, one holding a bucket (in turn the leader of the groups
// bucket, where the group coordinator runs, of the partition-checkpoint bucket and
// of the topics bucket), or any. At the end it prints one summary line, with the longest
// produce call per kind of disruption (max_failover_by_kind), and a second one
// ("chaos partitions") from a probe producer with one record in flight per
// partition: per kind of disruption, the longest acknowledgement wait of the
// partitions the disrupted node led and of those healthy nodes led, each for
// records sent before the node came back and after, and the records the group read
// twice (every disruption is logged the same way);
// and fails if an acknowledged record was lost, stored twice, or stored out of order
// for its key, or if the group did not read every acknowledged record.
//
// QXD_CHAOS_SEED repeats a run's choices, not its timing (the seed is logged);
// QXD_TEST_KEEP_LOGS=<dir> keeps the nodes' logs in a directory under dir, with
// the group members' client logs in members.log. Every
// probe wait over 1 s is logged with its partition and times, and every record
// the group read twice, to set beside them.
func TestChaos(t *testing.T) {
	duration := 2 * time.Minute
	if s := os.Getenv("QXD_CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("QXD_CHAOS_DURATION=%q: %v (use a Go duration such as 30s or 5m)", s, err)
		}
		duration = d
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("QXD_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("QXD_CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t.Logf("chaos seed %d (QXD_CHAOS_SEED=%d repeats its choices), duration %v", seed, seed, duration)

	bin := buildQxd(t)
	lab, why := tryNetnsLab(t, 3)
	layout := loopbackLayout(t, 3)
	if lab != nil {
		layout = lab.layout()
		t.Logf("nodes run in network namespaces %v: partitions are on", lab.nodes)
	} else {
		t.Logf("no network partitions in this run: %s", why)
	}
	cl := startProcCluster(t, bin, layout)

	ctx, cancel := context.WithTimeout(context.Background(), duration+10*time.Minute)
	defer cancel()
	const topic = "chaos"
	c := connect(t, cl.urls())
	if _, err := c.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: 6, Replicas: 3}); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	led := newLedger()
	led.reads = []readRec{}
	if os.Getenv("QXD_TEST_KEEP_LOGS") != "" {
		// The group members' client logs, beside the nodes'.
		f, err := os.Create(filepath.Join(cl.nodes[0].logDir, "members.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var mu sync.Mutex
		led.memberLog = func(i int, line string) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(f, "%s member %d: %s\n", time.Now().UTC().Format("15:04:05.000"), i, line)
		}
	}
	grp := startGroup(ctx, t, cl.urls(), "g-chaos", topic, 3, led)
	prodClient := connect(t, cl.urls())
	prod := startProducer(ctx, t, prodClient, topic, "p", led)
	// One record in flight per partition, on the producer's client, to tell the
	// partitions the disrupted node led from those healthy nodes led.
	probe := startPartitionProbe(ctx, t, prodClient, topic, 6, led)

	type event struct {
		at   time.Time
		what string
	}
	var events []event
	note := func(format string, args ...any) {
		e := event{time.Now(), fmt.Sprintf(format, args...)}
		events = append(events, e)
		t.Logf("%s %s", e.at.Format("15:04:05.000"), e.what)
	}
	counts := map[string]int{}
	actions := []string{"kill", "pause", "longpause", "restart"}
	if lab != nil {
		actions = append(actions, "partition")
	}
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }

	began := time.Now()
	deadline := began.Add(duration)
	time.Sleep(2 * time.Second)
	// The longest produce call begun during each disruption and the recovery after
	// it, per kind of disruption.
	kindStall := map[string]time.Duration{}
	var disruptions []disruption
	// The buckets whose leaders the loop harms in turn.
	buckets := []string{semantics.GroupsBucket, semantics.PartitionsBucket, semantics.TopicsBucket}
	bucketTurn := 0
	for time.Now().Before(deadline) {
		i := rng.IntN(len(cl.nodes))
		action := actions[rng.IntN(len(actions))]
		hold := between(2*time.Second, 7*time.Second)
		which, target := "", "a node picked at random"
		switch rng.IntN(3) {
		case 0: // the node the producer is connected to
			which, target = prodClient.Conn().ConnectedServerName(), "the producer's node"
		case 1: // a node holding a bucket: the groups bucket's is the group coordinator
			b := buckets[bucketTurn%len(buckets)]
			bucketTurn++
			which, target = bucketLeaders(ctx, t, cl.urls())[b], "the leader of bucket "+b
		}
		found := false
		for j, n := range cl.nodes {
			if n.name == which {
				i, found = j, true
			}
		}
		if !found {
			target = "a node picked at random"
		}
		n := cl.nodes[i]
		leaders := partitionLeaders(ctx, c, topic, 6)
		viaNode := prodClient.Conn().ConnectedServerName() == n.name
		if action == "longpause" {
			hold = 15 * time.Second
		}
		counts[action]++
		began := time.Now()
		var back time.Time
		switch action {
		case "kill":
			note("SIGKILL %s; restart in %v", n.name, hold.Round(time.Millisecond))
			if err := n.kill(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(hold)
			back = time.Now()
			rctx, rcancel := context.WithTimeout(ctx, 90*time.Second)
			err := cl.restart(rctx, n)
			rcancel()
			if err != nil {
				t.Fatalf("restart %s: %v", n.name, err)
			}
			note("%s restarted and ready", n.name)
		case "restart":
			note("restart %s cleanly (SIGTERM, then start)", n.name)
			if err := n.stop(30 * time.Second); err != nil {
				note("%v", err)
			}
			back = time.Now()
			rctx, rcancel := context.WithTimeout(ctx, 90*time.Second)
			err := cl.restart(rctx, n)
			rcancel()
			if err != nil {
				t.Fatalf("restart %s: %v", n.name, err)
			}
			note("%s restarted and ready", n.name)
		case "pause", "longpause":
			note("SIGSTOP %s for %v", n.name, hold.Round(time.Millisecond))
			if err := n.signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(hold)
			if err := n.signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			back = time.Now()
			note("SIGCONT %s", n.name)
		case "partition":
			note("cut %s off from its peers for %v", n.name, hold.Round(time.Millisecond))
			if err := lab.cut(i); err != nil {
				t.Fatal(err)
			}
			time.Sleep(hold)
			if err := lab.heal(i); err != nil {
				t.Fatal(err)
			}
			back = time.Now()
			note("healed %s", n.name)
		}
		// One node disrupted at a time: let the cluster recover before the next.
		sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
		if err := waitInSync(sctx, c, len(cl.nodes)); err != nil {
			note("not in sync 60s after the disruption: %v", err)
		}
		scancel()
		time.Sleep(between(time.Second, 4*time.Second))
		if d := led.longestBetween(began, time.Now()); d > kindStall[action] {
			kindStall[action] = d
		}
		disruptions = append(disruptions, disruption{kind: action, node: n.name, target: target, viaNode: viaNode, leaders: leaders, began: began, back: back, end: time.Now()})
	}
	note("chaos over; stopping the producer")
	prod.halt()
	probe.halt()

	led.mu.Lock()
	produced, acked, failed, lastErr := led.produced, len(led.acked), led.failed, led.lastErr
	stall, stallAt := led.stall, led.stallAt
	led.mu.Unlock()
	var during string
	for _, e := range events {
		if !e.at.After(stallAt.Add(stall)) {
			during = e.what
		}
	}
	t.Logf("longest produce stall %v began %s (last event before its end: %q)", stall.Round(time.Millisecond), stallAt.Format("15:04:05.000"), during)
	if failed > 0 {
		t.Logf("%d records failed; last error: %v", failed, lastErr)
	}

	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	readErr := waitRead(rctx, led)
	if readErr != nil {
		t.Logf("the members' view:\n%s", grp.state())
		if d, err := c.Admin().DescribeGroup(ctx, "g-chaos"); err == nil {
			t.Logf("the coordinator's view: %+v", d)
		}
	}
	grp.halt()
	rctx, rcancel = context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	led.mu.Lock()
	read := 0
	for v := range led.acked {
		if led.read[v] > 0 {
			read++
		}
	}
	led.mu.Unlock()

	// Per disruption and per kind: the probe's longest acknowledgement wait for the
	// partitions the disrupted node led and for those healthy nodes led, before the
	// node came back / after, and what the group read twice meanwhile.
	probe.mu.Lock()
	led.mu.Lock()
	waits := measure(disruptions, probe.waits, sortedReads(led.reads))
	led.mu.Unlock()
	probe.mu.Unlock()
	for j, d := range disruptions {
		var ledParts []int
		for p, l := range d.leaders {
			if l == d.node {
				ledParts = append(ledParts, p)
			}
		}
		via := ""
		if d.viaNode {
			via = ", the producers' client connected to it"
		}
		t.Logf("disruption %d at %s: %s of %s (%s%s; it led partitions %v): %v",
			j+1, d.began.Format("15:04:05.000"), d.kind, d.node, d.target, via, ledParts, waits[j])
	}
	led.mu.Lock()
	for _, s := range readAgain(sortedReads(led.reads), led.acked) {
		t.Logf("read again: %s", s)
	}
	led.mu.Unlock()
	probe.mu.Lock()
	for _, s := range slowWaits(disruptions, probe.waits, time.Second) {
		t.Logf("probe wait over 1s: %s", s)
	}
	probe.mu.Unlock()
	partsSummary := fmt.Sprintf("chaos partitions: seed=%d longest ack wait per kind, partitions the disrupted node led / healthy nodes led, before the node came back/after: %s",
		seed, byKind(actions, disruptions, waits))
	t.Log(partsSummary)
	fmt.Println(partsSummary)

	if err := waitInSync(rctx, c, len(cl.nodes)); err != nil {
		t.Logf("before reading the log: %v", err)
	}
	// The read of the log has a time of its own: a replica still behind can
	// keep the cluster out of sync for the whole wait above.
	lctx, lcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer lcancel()
	log, err := readLog(lctx, c, topic)
	if err != nil {
		t.Fatal(err)
	}
	led.mu.Lock()
	rep := checkLog(log, led.acked)
	led.mu.Unlock()

	var acts, stalls []string
	for _, a := range actions {
		acts = append(acts, fmt.Sprintf("%s=%d", a, counts[a]))
		if counts[a] > 0 {
			stalls = append(stalls, fmt.Sprintf("%s=%v", a, kindStall[a].Round(time.Millisecond)))
		}
	}
	summary := fmt.Sprintf("chaos summary: seed=%d duration=%v disruptions[%s] produced=%d acknowledged=%d failed=%d read=%d lost=%d duplicates=%d unacknowledged_stored=%d order_broken=%d max_failover=%v max_failover_by_kind[%s]",
		seed, duration, strings.Join(acts, " "), produced, acked, failed, read, len(rep.lost), rep.duplicates, rep.unacked, rep.orderBroken, stall.Round(time.Millisecond), strings.Join(stalls, " "))
	t.Log(summary)
	fmt.Println(summary)

	if readErr != nil {
		t.Error(readErr)
	}
	rep.report(t)
}

// TestLeaderMovesUnderLoad moves the leadership of a one-partition topic every half
// second (JetStream's leader step-down, as qxd's own leader balancing and shutdown
// hand-off do) for 20 s while a pipelining producer sends as fast as it can, with at
// most 200000 records awaiting results and a 10 s delivery timeout, so that some
// batches run out of time. Every acknowledged record must be stored once, where its
// acknowledgement said, in order per key; no record may be stored twice; and a
// record the producer reported as a duplicate (DUPLICATE_SEQUENCE_NUMBER: already
// stored) must not count as failed.
func TestLeaderMovesUnderLoad(t *testing.T) {
	bin := buildQxd(t)
	cl := startProcCluster(t, bin, loopbackLayout(t, 3))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "moves"
	c := connect(t, cl.urls())
	if _, err := c.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	p, err := connect(t, cl.urls()).NewProducer(qxd.DeliveryTimeout(10*time.Second), qxd.BatchBytes(2048), qxd.Linger(0))
	if err != nil {
		t.Fatal(err)
	}
	led := newLedger()
	errs := map[string]int{}
	window := make(chan struct{}, 200000) // records awaiting results
	dupFailed := map[string]bool{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case window <- struct{}{}:
			}
			r := &qxd.Record{Topic: topic, Key: []byte(fmt.Sprintf("p-k%d", i%23)), Value: []byte(fmt.Sprintf("p-%09d", i))}
			err := p.Produce(ctx, r, func(r *qxd.Record, err error) {
				<-window
				led.mu.Lock()
				defer led.mu.Unlock()
				if err != nil {
					led.failed++
					led.lastErr = err
					if errors.Is(err, semantics.ErrDuplicateSequence) {
						dupFailed[string(r.Value)] = true
					}
					e := err.Error()
					if i := strings.Index(e, ": "); i > 0 {
						e = e[i+2:]
					}
					errs[e[:min(len(e), 48)]]++
					return
				}
				led.acked[string(r.Value)] = position{r.Partition, r.Offset}
			})
			if err != nil {
				<-window
				return
			}
			led.mu.Lock()
			led.produced++
			led.mu.Unlock()
		}
	}()
	nc, err := nats.Connect(cl.urls())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	moves := 0
	for range 40 {
		time.Sleep(500 * time.Millisecond)
		if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+semantics.StreamName(topic, 0), nil, 2*time.Second); err == nil {
			moves++
		}
	}
	close(stop)
	<-done
	_ = p.Close(ctx)
	led.mu.Lock()
	t.Logf("%d leader moves; %d records produced, %d acknowledged, %d failed: %v", moves, led.produced, len(led.acked), led.failed, errs)
	led.mu.Unlock()
	log, err := readLog(ctx, c, topic)
	if err != nil {
		t.Fatal(err)
	}
	led.mu.Lock()
	rep := checkLog(log, led.acked)
	led.mu.Unlock()
	t.Logf("log: %d records stored, %d of them never acknowledged, %d duplicates, %d acknowledged records lost, %d stored out of order",
		rep.stored, rep.unacked, rep.duplicates, len(rep.lost), rep.orderBroken)
	rep.report(t)
	stored := map[string]bool{}
	for _, r := range log[0] {
		stored[r.value] = true
	}
	wronglyFailed := 0
	for v := range dupFailed {
		if stored[v] {
			wronglyFailed++
		}
	}
	if wronglyFailed > 0 {
		t.Errorf("%d stored records were reported to the application as failed with DUPLICATE_SEQUENCE_NUMBER; Kafka's producer completes such a batch successfully", wronglyFailed)
	}
}
