//go:build chaos

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/partitioner"
	"github.com/qxd-io/qxd/semantics"
)

// TestFaultDrill runs three "qxd server" processes, a six-partition, three-replica
// topic, a keyed producer with one record in flight per partition (a key per
// partition), and a three-member consumer group committing every second; then it
// harms one node and reports, for the partitions the faulty node led and for those
// healthy nodes led, the longest time a record waited for its acknowledgement —
// separately for records sent before the node came back (the fault's stall) and
// after (a second stall the return adds) — what the group read twice, and how
// long each partition's committed offset stood still (by the times the offsets
// bucket stored the commits) beside its read gap.
//
// Settings, all environment variables:
//
//   - QXD_DRILL_FAULT: pause (SIGSTOP, then SIGCONT; the default), kill (SIGKILL,
//     then restart), stop (SIGTERM, then restart), int (SIGINT, then restart) or
//     cut (the node's links to its peers down, then up; needs root and network
//     namespaces).
//   - QXD_DRILL_PAUSE: how long the node stays paused, down or cut off (default
//     15s).
//   - QXD_DRILL_TARGET: leader (the node that leads partition 0; the default) or
//     buckets (the node that leads the stream of the groups bucket, where the group
//     coordinator keeps its state).
//   - QXD_DRILL_VIA: healthy (the producer connects to a healthy node first; the
//     default) or faulty (to the faulty node first; "paused" is the same).
//   - QXD_DRILL_BUCKETS: split (before the group starts, the groups bucket's
//     leadership moves to n1 and the offsets and partition-checkpoint buckets' to
//     n2: for a pair cut, the coordinator and the commits it stores are led from
//     the two sides of the cut; automatic leader placement moves the offsets
//     bucket's back to n1 within seconds, so only the checkpoint bucket stays
//     apart when the nodes place leaders, see the fault's log line),
//     split-at-cut (pair cut only: the groups bucket's leadership moves to n1
//     before the group starts, and the offsets and partition-checkpoint buckets'
//     to n2 immediately before the cut, which is installed as soon as they are
//     led there and tried again, up to 3 times, while a look through n3 right
//     after it or a second later finds them not split; the SUMMARY line says
//     whether they were split at the cut, and the drill then fails if the
//     commits stood still for over half the cut) or empty (leaders as they
//     fall; the default).
//   - QXD_DRILL_BIN: a prebuilt qxd binary, to measure another build with the same
//     drill.
//   - QXD_DRILL_HEALTHY_MAX: fail if a partition a healthy node led waited longer
//     (default: report only).
//   - QXD_DRILL_LOGS: a directory to write each node's whole log to, as
//     <node>.log (default: none; QXD_TEST_NODE_LOG_LEVEL=debug for qxd's
//     debug lines, with QXD_NATS_DEBUG=1 also JetStream's and RAFT's).
//
// It fails if a record failed or the group did not read every acknowledged record.
// The last line starting SUMMARY holds the figures, with the machine's load.
func TestFaultDrill(t *testing.T) {
	faultDrill(t, drillSettings(t))
}

// TestPairCutDrill is TestFaultDrill with a cut between two live nodes: n1 and n2
// cannot reach each other (a blackhole route to the other's cluster address in
// each one's namespace) for QXD_DRILL_PAUSE (15 s) while n3 reaches both, then the
// routes heal and the producer runs on for 10 s. Its SUMMARY line gives the
// longest acknowledgement wait of the partitions each node led. QXD_DRILL_VIA:
// healthy connects the producer to n3 first, faulty to n1. Needs root and network
// namespaces.
func TestPairCutDrill(t *testing.T) {
	d := drillSettings(t)
	d.fault, d.runOn = "pair", 10*time.Second
	faultDrill(t, d)
}

// TestCutProducersNodeDrill is TestFaultDrill with the node the producer is
// connected to, partition 0's leader, cut off for 5 s (QXD_DRILL_PAUSE):
// it fails when a partition a healthy node led waited more than 1 s for an
// acknowledgement (QXD_DRILL_HEALTHY_MAX), issue 18's bound, which the producer
// meets only if it leaves the cut node within well under a second. Needs root
// and network namespaces.
func TestCutProducersNodeDrill(t *testing.T) {
	d := drillSettings(t)
	d.fault, d.target, d.via, d.buckets, d.runOn = "cut", "leader", "faulty", "", 5*time.Second
	if os.Getenv("QXD_DRILL_PAUSE") == "" {
		d.hold = 5 * time.Second
	}
	if d.healthyMax == 0 {
		d.healthyMax = time.Second
	}
	faultDrill(t, d)
}

// faultDrill runs the drill d (TestFaultDrill's doc).
func faultDrill(t *testing.T, d drill) {
	bin := drillBin(t)
	layout := loopbackLayout(t, 3)
	var lab *netnsLab
	if d.fault == "cut" || d.fault == "pair" {
		lab = newNetnsLab(t, 3)
		layout = lab.layout()
	}
	loadBefore := loadAvg()
	cl := startProcCluster(t, bin, layout)
	ctx, cancel := context.WithTimeout(context.Background(), d.hold+5*time.Minute)
	defer cancel()

	const topic = "drill"
	const parts = 6
	admin := connect(t, cl.urls())
	if _, err := admin.Admin().CreateTopic(ctx, topic, qxd.TopicConfig{Partitions: parts, Replicas: 3}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	// Let leader balancing spread the partitions before the drill.
	time.Sleep(5 * time.Second)
	leaders := make([]string, parts)
	for p := range int32(parts) {
		var err error
		if leaders[p], err = leaderOf(ctx, admin, topic, p); err != nil {
			t.Fatal(err)
		}
	}

	switch d.buckets {
	case "split":
		placeBucketLeaders(ctx, t, cl.urls(), map[string]string{
			semantics.GroupsBucket:     cl.nodes[0].name,
			semantics.OffsetsBucket:    cl.nodes[1].name,
			semantics.PartitionsBucket: cl.nodes[1].name,
		})
	case "split-at-cut":
		if d.fault != "pair" {
			t.Fatalf("QXD_DRILL_BUCKETS=split-at-cut is for the pair cut (TestPairCutDrill), not fault %s", d.fault)
		}
		// The coordinators on n1 from the start, so that the split at the cut
		// moves the offsets bucket only.
		placeBucketLeaders(ctx, t, cl.urls(), map[string]string{semantics.GroupsBucket: cl.nodes[0].name})
	}

	led := newLedger()
	led.reads = []readRec{}
	led.pollErrs = []string{}
	var faultMu sync.Mutex
	var faultAtShared time.Time
	led.memberLog = func(i int, line string) {
		if at := faultAtOf(&faultMu, &faultAtShared); !at.IsZero() {
			t.Logf("member %d's client: %s (%v after the fault)", i, line, since(at, time.Now()))
		}
	}
	const groupID = "g-drill"
	grp := startGroup(ctx, t, cl.urls(), groupID, topic, 3, led)
	commits := watchCommitted(ctx, admin, groupID)
	buckets := bucketLeaders(ctx, t, cl.urls())
	victimName := leaders[0]
	if d.target == "buckets" {
		victimName = buckets[semantics.GroupsBucket]
	}
	if d.fault == "pair" {
		victimName = cl.nodes[0].name
	}
	victim, vi := cl.node(victimName), -1
	for i, n := range cl.nodes {
		if n == victim {
			vi = i
		}
	}
	if victim == nil {
		t.Fatalf("the node to harm, %q, is not one of the drill's nodes", victimName)
	}
	// The nodes the fault harms: the victim, and for a pair cut its partner n2.
	faulty := map[string]bool{victim.name: true}
	if d.fault == "pair" {
		faulty[cl.nodes[1].name] = true
	}
	var urls []string
	for _, n := range cl.nodes {
		if !faulty[n.name] {
			urls = append(urls, n.url())
		}
	}
	for _, n := range cl.nodes {
		if faulty[n.name] && n != victim {
			urls = append(urls, n.url())
		}
	}
	if d.via == "faulty" {
		urls = append([]string{victim.url()}, urls...)
	} else {
		urls = append(urls, victim.url())
	}
	elections := watchElections(t, urls[1:])
	var healthyURLs []string
	for _, n := range cl.nodes {
		if !faulty[n.name] {
			healthyURLs = append(healthyURLs, n.url())
		}
	}
	storedW := watchStored(ctx, t, strings.Join(healthyURLs, ","), groupID, topic, parts)
	pc := connectLogged(t, strings.Join(urls, ","), func(msg string) {
		t.Logf("producer's client: %s (%v after the fault)", msg, since(faultAtOf(&faultMu, &faultAtShared), time.Now()))
	})
	prod, err := pc.NewProducer(qxd.Linger(0), qxd.DeliveryTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	keys := partitionKeys(parts)

	var mu sync.Mutex
	var waits []ackWait
	var failed int
	var lastErr error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range int32(parts) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				began := time.Now()
				done := make(chan error, 1)
				r := &qxd.Record{Topic: topic, Key: keys[p], Value: fmt.Appendf(nil, "d%d-%09d", p, i)}
				if err := prod.Produce(ctx, r, func(_ *qxd.Record, err error) { done <- err }); err != nil {
					done <- err
				}
				err := <-done
				took := time.Since(began)
				mu.Lock()
				waits = append(waits, ackWait{p: p, began: began, took: took})
				if err != nil {
					failed++
					lastErr = err
				}
				mu.Unlock()
				led.mu.Lock()
				if err == nil {
					led.acked[string(r.Value)] = position{r.Partition, r.Offset}
				}
				led.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(3 * time.Second)
	// The buckets' leaders again, as the fault finds them: automatic leader
	// placement moves the offsets and transactions buckets' to the groups
	// bucket's leader meanwhile (a split placement of those does not last).
	buckets = bucketLeaders(ctx, t, cl.urls())

	// split-at-cut: the buckets split, and the cut installed at once (splitAtCut).
	faultAt, cutDone, splitAtTheCut := time.Now(), false, false
	if d.buckets == "split-at-cut" {
		faultAt, buckets, splitAtTheCut = splitAtCut(ctx, t, lab, cl)
		cutDone = true
		if !splitAtTheCut {
			t.Logf("the buckets were not split at the cut in %d tries (led %v): this run does not drill the split", splitAtCutTries, buckets)
		}
	}
	faultMu.Lock()
	faultAtShared = faultAt
	faultMu.Unlock()
	var backAt time.Time
	what := map[string]string{"pause": "SIGSTOP", "kill": "SIGKILL", "stop": "SIGTERM", "int": "SIGINT", "cut": "cut off", "pair": "cut from n2"}[d.fault]
	t.Logf("%s %s (leads %v; buckets %v) for %v; producer connected via %s; leaders %v",
		what, victim.name, ledBy(leaders, victim.name), buckets, d.hold, urls[0], leaders)
	switch d.fault {
	case "pause":
		if err := victim.signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(d.hold)
		if err := victim.signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		backAt = time.Now()
		t.Logf("SIGCONT %s", victim.name)
	case "cut":
		if err := lab.cut(vi); err != nil {
			t.Fatal(err)
		}
		time.Sleep(d.hold)
		if err := lab.heal(vi); err != nil {
			t.Fatal(err)
		}
		backAt = time.Now()
		t.Logf("healed %s's links", victim.name)
	case "pair":
		if !cutDone { // else splitAtCut installed it
			if err := lab.cutPair(0, 1); err != nil {
				t.Fatal(err)
			}
		}
		// The cut is between n1 and n2 only: each still reaches n3.
		for _, c := range [][2]int{{0, 1}, {1, 0}, {0, 2}, {1, 2}, {2, 0}, {2, 1}} {
			want := c != [2]int{0, 1} && c != [2]int{1, 0}
			if err := lab.reach(c[0], c[1]); (err == nil) != want {
				t.Fatalf("n%d reaching n%d's cluster port during the cut: %v, want reachable %v", c[0]+1, c[1]+1, err, want)
			}
		}
		t.Logf("n1 and n2 reach n3's cluster port and not each other's (%v after the cut)", since(faultAt, time.Now()))
		time.Sleep(d.hold - time.Since(faultAt))
		if err := lab.healPair(0, 1); err != nil {
			t.Fatal(err)
		}
		backAt = time.Now()
		if err := lab.reach(0, 1); err != nil {
			t.Errorf("n1 reaching n2 after the heal: %v", err)
		}
		t.Logf("healed the cut between n1 and n2")
	default:
		switch d.fault {
		case "kill":
			err = victim.kill()
		case "stop":
			err = victim.stopWith(syscall.SIGTERM, 30*time.Second)
		case "int":
			err = victim.stopWith(syscall.SIGINT, 30*time.Second)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s gone %v after the signal", victim.name, time.Since(faultAt).Round(time.Millisecond))
		time.Sleep(d.hold)
		if err := victim.start(); err != nil {
			t.Fatal(err)
		}
		backAt = time.Now()
		if err := cl.waitReady(ctx, victim); err != nil {
			t.Fatalf("restart %s: %v", victim.name, err)
		}
		t.Logf("%s restarted, ready %v after its start", victim.name, time.Since(backAt).Round(time.Millisecond))
	}
	time.Sleep(d.runOn)
	close(stop)
	stoppedAt := time.Now()
	wg.Wait()
	_ = prod.Close(ctx)

	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	readErr := waitRead(rctx, led)
	rcancel()
	var members, coordView string
	if readErr != nil {
		members = grp.state()
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		if d, err := admin.Admin().DescribeGroup(dctx, groupID); err == nil {
			coordView = fmt.Sprintf("%+v", d)
		} else {
			coordView = err.Error()
		}
		dcancel()
	}
	grp.halt()

	// The stalls, per partition and phase.
	type worst struct {
		during, after     time.Duration
		duringAt, afterAt time.Time
		n                 int
	}
	res := make([]worst, parts)
	var sick, sickAfter, healthy, healthyAfter time.Duration
	mu.Lock()
	for _, w := range waits {
		if w.began.Add(w.took).Before(faultAt) {
			continue
		}
		r := &res[w.p]
		r.n++
		if w.began.Before(backAt) {
			if w.took > r.during {
				r.during, r.duringAt = w.took, w.began
			}
		} else if w.took > r.after {
			r.after, r.afterAt = w.took, w.began
		}
	}
	nFailed, lastFail := failed, lastErr
	for _, w := range waits {
		if w.took >= time.Second && !w.began.Add(w.took).Before(faultAt) {
			t.Logf("p%d waited %v for a record sent %v after the fault (answered %v after it)",
				w.p, w.took.Round(time.Millisecond), since(faultAt, w.began), since(faultAt, w.began.Add(w.took)))
		}
	}
	mu.Unlock()
	for _, e := range elections.halt() {
		t.Logf("%v after the fault: %s", since(faultAt, e.at), e.what)
	}
	back := map[string]string{"pause": "SIGCONT", "cut": "heal", "pair": "heal"}[d.fault]
	if back == "" {
		back = "restart"
	}
	type nodeWorst struct{ during, after time.Duration }
	byNode := map[string]*nodeWorst{}
	for _, n := range cl.nodes {
		byNode[n.name] = &nodeWorst{}
	}
	for p, r := range res {
		if w := byNode[leaders[p]]; w != nil {
			w.during, w.after = max(w.during, r.during), max(w.after, r.after)
		}
		kind := "healthy"
		if faulty[leaders[p]] {
			kind = "faulty"
			sick, sickAfter = max(sick, r.during), max(sickAfter, r.after)
		} else {
			healthy, healthyAfter = max(healthy, r.during), max(healthyAfter, r.after)
		}
		t.Logf("p%d (%s leader %s): longest ack wait begun before the %s %v (at %v), after it %v (at %v); %d records",
			p, kind, leaders[p], back, r.during.Round(time.Millisecond), since(faultAt, r.duringAt),
			r.after.Round(time.Millisecond), since(faultAt, r.afterAt), r.n)
	}

	// What the group read twice: every record delivered more than once, and those
	// of them that the group had committed (as its description said) before they
	// came again: a replay of committed records.
	snaps := commits.halt()
	led.mu.Lock()
	redelivered, sameMember, replayedCommitted := 0, 0, 0
	firstBy := map[string]int{}
	type span struct {
		from, to         int64
		first, last      time.Time
		members          map[[2]int]int // (first reader, second reader) → records
		committedAtFirst int64
	}
	spans := map[int32]*span{}
	for _, r := range led.reads {
		first, ok := firstBy[r.value]
		if !ok {
			firstBy[r.value] = r.member
			continue
		}
		redelivered++
		if first == r.member {
			sameMember++
		}
		at, ok := led.acked[r.value]
		if !ok {
			continue
		}
		if at.offset < committedAt(snaps, at.partition, r.at) {
			replayedCommitted++
		}
		sp := spans[at.partition]
		if sp == nil {
			sp = &span{from: at.offset, to: at.offset, first: r.at, members: map[[2]int]int{},
				committedAtFirst: committedAt(snaps, at.partition, r.at)}
			spans[at.partition] = sp
		}
		sp.from, sp.to, sp.last = min(sp.from, at.offset), max(sp.to, at.offset), r.at
		sp.members[[2]int{first, r.member}]++
	}
	for p := range int32(parts) {
		if sp := spans[p]; sp != nil {
			t.Logf("p%d read twice: offsets %d-%d, from %v to %v after the fault, (first reader, second reader) → records %v; committed offset then %d",
				p, sp.from, sp.to, since(faultAt, sp.first), since(faultAt, sp.last), sp.members, sp.committedAtFirst)
		}
	}
	led.mu.Unlock()
	var descGaps []commitGap
	for _, g := range describeStalls(snaps, faultAt) {
		descGaps = append(descGaps, g)
	}
	slices.SortFunc(descGaps, func(a, b commitGap) int { return int(a.p - b.p) })
	// A description's offsets are read seconds before it ends while a
	// partition's leader is away (it reads each partition's log offsets after
	// them), and its sample is stamped at the end: it overstates a stall. The
	// offsets bucket's own times of the commits it stored are the measure.
	t.Logf("group %s: longest time a partition's committed offset stood still from the fault on, as the group's description sampled it: %v (%s)",
		groupID, commitStall(snaps, faultAt), gapsText(descGaps, faultAt))
	storedCommits, storedErrs := storedW.halt()
	storedGaps := storedStalls(storedCommits, parts, faultAt, stoppedAt)
	var commitStill commitGap
	for _, g := range storedGaps {
		if g.d() > commitStill.d() {
			commitStill = g
		}
	}
	t.Logf("group %s: longest time a partition's committed offset stood still from the fault on, as the offsets bucket stored its commits (%d commits seen): %s",
		groupID, len(storedCommits), gapsText(storedGaps, faultAt))
	for _, e := range storedErrs {
		t.Logf("offsets bucket read failed: %s", e)
	}
	// A committed offset that went back, or vanished, as the group's description
	// said: the members never commit an offset below one committed before, so it
	// was read from a copy behind the bucket's leader. An error for a pair cut,
	// whose nodes each hold a copy cut apart from the leader's on the other.
	lastCommitted := map[int32]int64{}
	wentBack := 0
	for _, s := range snaps {
		for p, c := range lastCommitted {
			if now, ok := s.committed[p]; !ok || now < c {
				wentBack++
				t.Logf("group %s: p%d's committed offset went from %d to %d (present %v) %v after the fault", groupID, p, c, now, ok, since(faultAt, s.at))
			}
		}
		maps.Copy(lastCommitted, s.committed)
	}
	if wentBack > 0 && d.fault == "pair" {
		t.Errorf("group %s: a committed offset went back %d times in the group's description", groupID, wentBack)
	}
	// A pair cut leaves every node running and reaching a majority: no member
	// may read again what its group had committed.
	if replayedCommitted > 0 && d.fault == "pair" {
		t.Errorf("group %s read %d records again that it had already committed", groupID, replayedCommitted)
	}
	// How long the group read nothing of each partition, from the fault on (the
	// producer writes to each all the time).
	lastRead := map[int32]time.Time{}
	readGap := make([]time.Duration, parts)
	readGapAt := make([]time.Time, parts)
	led.mu.Lock()
	for _, r := range led.reads {
		var p int32
		if _, err := fmt.Sscanf(r.value, "d%d-", &p); err != nil || p < 0 || p >= parts || r.at.Before(faultAt) {
			continue
		}
		from := maxTime(lastRead[p], faultAt)
		if g := r.at.Sub(from); g > readGap[p] {
			readGap[p], readGapAt[p] = g, from
		}
		lastRead[p] = r.at
	}
	led.mu.Unlock()
	var gaps []string
	var readStall time.Duration
	for p := range parts {
		gaps = append(gaps, fmt.Sprintf("p%d %v (from %v)", p, readGap[p].Round(time.Millisecond), since(faultAt, readGapAt[p])))
		readStall = max(readStall, readGap[p])
	}
	t.Logf("group %s: longest time it read nothing of a partition, from the fault on: %s", groupID, strings.Join(gaps, ", "))

	var perNode []string
	for _, n := range cl.nodes {
		w := byNode[n.name]
		perNode = append(perNode, fmt.Sprintf("%s %v %v / %v", n.name, ledBy(leaders, n.name),
			w.during.Round(time.Millisecond), w.after.Round(time.Millisecond)))
	}
	atCut := ""
	if d.buckets == "split-at-cut" {
		atCut = fmt.Sprintf(" buckets=split-at-cut (split at the cut: %v)", splitAtTheCut)
		if !splitAtTheCut {
			atCut = " buckets=split-at-cut (NOT split at the cut: not a run of the split)"
		}
	}
	t.Logf("SUMMARY fault=%s for %v target=%s(%s) via=%s%s: longest ack wait, partitions the faulty node%s led: %v before the %s, %v after; partitions healthy nodes led: %v before, %v after; by leader (partitions, before / after): %s; %d records failed; group's longest read gap %v; commits stood still %v (p%d, from %v; its read gap %v; groups bucket led by %s, offsets by %s, topics by %s); group read %d records twice (%d by the member that read them first, %d already committed); load %s before, %s after",
		d.fault, d.hold, d.target, victim.name, d.via, atCut, map[bool]string{true: "s"}[len(faulty) > 1],
		sick.Round(time.Millisecond), back, sickAfter.Round(time.Millisecond),
		healthy.Round(time.Millisecond), healthyAfter.Round(time.Millisecond),
		strings.Join(perNode, ", "),
		nFailed, readStall.Round(time.Millisecond),
		commitStill.d().Round(time.Millisecond), commitStill.p, since(faultAt, commitStill.from), readGap[commitStill.p].Round(time.Millisecond),
		buckets[semantics.GroupsBucket], buckets[semantics.OffsetsBucket], buckets[semantics.TopicsBucket],
		redelivered, sameMember, replayedCommitted, loadBefore, loadAvg())
	if nFailed > 0 {
		t.Errorf("%d records failed; last error: %v", nFailed, lastFail)
	}
	// Split at the cut, the groups bucket's leader hands it to n3 once it counts
	// the cut (2-3 s), and n3 takes the offsets bucket: the commits go on well
	// before the heal.
	if splitAtTheCut && commitStill.d() > d.hold/2 {
		t.Errorf("group %s: commits stood still %v (p%d, from %v) with the coordinator's buckets split at the %v cut; want at most %v (the groups bucket moves to n3)",
			groupID, commitStill.d().Round(time.Millisecond), commitStill.p, since(faultAt, commitStill.from), d.hold, d.hold/2)
	}
	if readErr != nil {
		t.Error(readErr)
		t.Logf("the members' view:\n%s", members)
		t.Logf("the coordinator's view: %s", coordView)
	}
	led.mu.Lock()
	for _, e := range led.pollErrs {
		t.Logf("poll error: %s", e)
	}
	led.mu.Unlock()
	// The log against what was acknowledged: every record stored once, where its
	// acknowledgement said, offsets dense, each key in order.
	lctx, lcancel := context.WithTimeout(ctx, 60*time.Second)
	if err := waitInSync(lctx, admin, 3); err != nil {
		t.Logf("before reading the log: %v", err)
	}
	stored, err := readLog(lctx, admin, topic)
	lcancel()
	if err != nil {
		t.Errorf("read the log: %v", err)
	} else {
		led.mu.Lock()
		rep := checkLog(stored, led.acked)
		led.mu.Unlock()
		t.Logf("log: %d records stored, %d never acknowledged, %d duplicates, %d acknowledged records lost",
			rep.stored, rep.unacked, rep.duplicates, len(rep.lost))
		rep.report(t)
		if t.Failed() {
			dumpAnomalies(t, stored, 5)
		}
	}
	if d.healthyMax > 0 && max(healthy, healthyAfter) > d.healthyMax {
		t.Errorf("a partition led by a healthy node waited %v for an acknowledgement (want at most %v)", max(healthy, healthyAfter), d.healthyMax)
	}
	// The nodes' warnings, and the leadership changes of the drill's partitions
	// (JetStream's notices, logged at --log-level debug:
	// QXD_TEST_NODE_LOG_LEVEL=debug).
	for _, n := range cl.nodes {
		for _, l := range strings.Split(n.log(1<<30), "\n") {
			if strings.Contains(l, "QXD_"+topic) && strings.Contains(l, "stream leader") || strings.Contains(l, "level=WARN") {
				t.Logf("%s: %s", n.name, l)
			}
		}
	}
	// The writers' starts and stops (their debug lines) and the RAFT groups the
	// election watch made campaign or send an early heartbeat, from the fault
	// on, when after the fault.
	for _, n := range cl.nodes {
		for _, l := range strings.Split(n.log(1<<30), "\n") {
			writer := strings.Contains(l, `msg="writer `) && strings.Contains(l, "topic="+topic+" ")
			if !writer && !strings.Contains(l, `msg="raft group `) {
				continue
			}
			if at, ok := logTime(l); ok && !at.Before(faultAt) {
				t.Logf("%s, %v after the fault: %s", n.name, since(faultAt, at), l)
			}
		}
	}
	if t.Failed() {
		for _, n := range cl.nodes {
			t.Logf("log of %s:\n%s", n.name, n.log(6000))
		}
	}
	if dir := os.Getenv("QXD_DRILL_LOGS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Errorf("keep the nodes' logs: %v", err)
		}
		for _, n := range cl.nodes {
			path := filepath.Join(dir, n.name+".log")
			if err := os.WriteFile(path, []byte(n.log(1<<30)), 0o644); err != nil {
				t.Errorf("keep %s's log: %v", n.name, err)
			}
		}
	}
}

// drill is what TestFaultDrill does, from its environment variables.
type drill struct {
	fault, target, via string
	buckets            string // "split" or "split-at-cut": QXD_DRILL_BUCKETS
	hold, healthyMax   time.Duration
	runOn              time.Duration // how long the producer runs on after the node is back
}

func drillSettings(t *testing.T) drill {
	d := drill{fault: "pause", target: "leader", via: "healthy", hold: 15 * time.Second, runOn: 20 * time.Second}
	dur := func(name string, to *time.Duration) {
		if s := os.Getenv(name); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil {
				t.Fatalf("%s=%q: %v (use a Go duration such as 15s)", name, s, err)
			}
			*to = v
		}
	}
	dur("QXD_DRILL_PAUSE", &d.hold)
	dur("QXD_DRILL_HEALTHY_MAX", &d.healthyMax)
	switch s := os.Getenv("QXD_DRILL_FAULT"); s {
	case "":
	case "pause", "kill", "stop", "int", "cut":
		d.fault = s
	default:
		t.Fatalf("QXD_DRILL_FAULT=%q: use pause (SIGSTOP, then SIGCONT), kill (SIGKILL), stop (SIGTERM), int (SIGINT), each then restart, or cut (links to the peers down, then up)", s)
	}
	switch s := os.Getenv("QXD_DRILL_TARGET"); s {
	case "":
	case "leader", "buckets":
		d.target = s
	default:
		t.Fatalf("QXD_DRILL_TARGET=%q: use leader (the leader of partition 0) or buckets (the leader of the groups bucket)", s)
	}
	switch s := os.Getenv("QXD_DRILL_BUCKETS"); s {
	case "":
	case "split", "split-at-cut":
		d.buckets = s
	default:
		t.Fatalf("QXD_DRILL_BUCKETS=%q: use split (the groups bucket led by n1, the offsets and partition-checkpoint buckets by n2, before the group starts), split-at-cut (the same, immediately before a pair cut) or leave it empty", s)
	}
	switch s := os.Getenv("QXD_DRILL_VIA"); s {
	case "", "healthy":
	case "faulty", "paused":
		d.via = "faulty"
	default:
		t.Fatalf("QXD_DRILL_VIA=%q: use healthy or faulty", s)
	}
	return d
}

// ackWait is how long one record waited for its acknowledgement.
type ackWait struct {
	p     int32
	began time.Time
	took  time.Duration
}

// partitionKeys returns a key for each of n partitions that the default
// partitioner (Kafka's murmur2) puts there.
func partitionKeys(n int32) [][]byte {
	keys := make([][]byte, n)
	for i, found := 0, int32(0); found < n; i++ {
		k := fmt.Appendf(nil, "key-%d", i)
		if p := partitioner.KafkaPartition(k, n); keys[p] == nil {
			keys[p] = k
			found++
		}
	}
	return keys
}

// bucketLeaders returns the node leading each of the metadata and group buckets'
// streams; a bucket whose leader cannot be learned is left out (and logged).
func bucketLeaders(ctx context.Context, t *testing.T, urls string) map[string]string {
	t.Helper()
	out := map[string]string{}
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Logf("bucket leaders: connect to %s: %v", urls, err)
		return out
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Logf("bucket leaders: %v", err)
		return out
	}
	for _, b := range []string{semantics.GroupsBucket, semantics.OffsetsBucket, semantics.PartitionsBucket, semantics.TopicsBucket} {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := js.Stream(sctx, "KV_"+b)
		cancel()
		if err != nil {
			t.Logf("bucket leaders: bucket %s: %v", b, err)
			continue
		}
		if ci := s.CachedInfo().Cluster; ci != nil {
			out[b] = ci.Leader
		}
	}
	return out
}

// placeBucketLeaders moves the leadership of each bucket's stream to the node named
// for it, before the drill's fault.
func placeBucketLeaders(ctx context.Context, t *testing.T, urls string, want map[string]string) {
	t.Helper()
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatalf("place bucket leaders: connect to %s: %v", urls, err)
	}
	defer nc.Close()
	for b, node := range want {
		qxdtest.LeadStream(ctx, t, nc, semantics.KVStream(b), node)
		t.Logf("bucket %s led by %s", b, node)
	}
}

// committedOffsets returns the group's committed offset of each partition (none
// when the group cannot be described).
func committedOffsets(ctx context.Context, c *qxd.Client, group string) map[int32]int64 {
	out := map[int32]int64{}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := c.Admin().DescribeGroup(dctx, group)
	if err != nil {
		return out
	}
	for _, p := range d.Partitions {
		out[p.Partition] = p.Committed
	}
	return out
}

// commitSnap is a group's committed offsets at one moment.
type commitSnap struct {
	at        time.Time
	committed map[int32]int64
}

// committedWatch describes a group every 250 ms, keeping its committed offsets.
type committedWatch struct {
	stop  chan struct{}
	done  chan struct{}
	snaps []commitSnap
}

func watchCommitted(ctx context.Context, c *qxd.Client, group string) *committedWatch {
	w := &committedWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			if o := committedOffsets(ctx, c, group); len(o) > 0 {
				w.snaps = append(w.snaps, commitSnap{time.Now(), o})
			}
			select {
			case <-w.stop:
				return
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	return w
}

// halt stops the watch and returns what it saw.
func (w *committedWatch) halt() []commitSnap {
	close(w.stop)
	<-w.done
	return w.snaps
}

// committedAt is the highest committed offset of partition p seen before at.
func committedAt(snaps []commitSnap, p int32, at time.Time) int64 {
	var c int64
	for _, s := range snaps {
		if s.at.After(at) {
			break
		}
		c = max(c, s.committed[p])
	}
	return c
}

// commitStall is the longest time from `from` on that a partition's committed
// offset did not move, as seen by the watch.
func commitStall(snaps []commitSnap, from time.Time) time.Duration {
	var longest time.Duration
	last := map[int32]int64{}
	since := map[int32]time.Time{}
	for _, s := range snaps {
		for p, c := range s.committed {
			if c != last[p] || since[p].IsZero() {
				last[p], since[p] = c, s.at
				continue
			}
			if s.at.After(from) {
				longest = max(longest, s.at.Sub(maxTime(since[p], from)))
			}
		}
	}
	return longest.Round(time.Millisecond)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// ledBy lists the partitions node leads.
func ledBy(leaders []string, node string) []int {
	var out []int
	for p, l := range leaders {
		if l == node {
			out = append(out, p)
		}
	}
	return out
}

// since says how long after from at was ("-" for no time).
func since(from, at time.Time) string {
	if at.IsZero() {
		return "-"
	}
	return at.Sub(from).Round(time.Millisecond).String()
}

// loadAvg is the machine's 1-minute load average, as /proc/loadavg says.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// logTime is the time of a node's log line (its time= field).
func logTime(l string) (time.Time, bool) {
	f, ok := strings.CutPrefix(l, "time=")
	if !ok {
		return time.Time{}, false
	}
	f, _, _ = strings.Cut(f, " ")
	at, err := time.Parse(time.RFC3339Nano, f)
	return at, err == nil
}

func faultAtOf(mu *sync.Mutex, at *time.Time) time.Time {
	mu.Lock()
	defer mu.Unlock()
	return *at
}

// election is one of JetStream's advisories about a stream's leadership.
type election struct {
	at   time.Time
	what string
}

// electionWatch records JetStream's leader-elected and quorum-lost advisories, as
// the nodes at urls relay them.
type electionWatch struct {
	mu  sync.Mutex
	got []election
	ncs []*nats.Conn
}

func watchElections(t *testing.T, urls []string) *electionWatch {
	t.Helper()
	w := &electionWatch{}
	for _, u := range urls {
		nc, err := nats.Connect(u, nats.MaxReconnects(-1))
		if err != nil {
			t.Logf("advisories from %s: %v", u, err)
			continue
		}
		w.ncs = append(w.ncs, nc)
		for _, subj := range []string{"$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.>", "$JS.EVENT.ADVISORY.STREAM.QUORUM_LOST.>"} {
			_, err := nc.Subscribe(subj, func(m *nats.Msg) {
				var a struct {
					Stream string `json:"stream"`
					Leader string `json:"leader"`
				}
				_ = json.Unmarshal(m.Data, &a)
				kind := "leader elected"
				if strings.Contains(m.Subject, "QUORUM_LOST") {
					kind = "quorum lost"
				}
				w.mu.Lock()
				w.got = append(w.got, election{time.Now(), fmt.Sprintf("%s %s: %s (via %s)", a.Stream, kind, a.Leader, nc.ConnectedServerName())})
				w.mu.Unlock()
			})
			if err != nil {
				t.Logf("advisories from %s: %v", u, err)
			}
		}
	}
	return w
}

func (w *electionWatch) halt() []election {
	for _, nc := range w.ncs {
		nc.Close()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got
}

// connectLogged is connect for the drill's producer, whose client's log lines go to
// logf.
func connectLogged(t *testing.T, urls string, logf func(string)) *qxd.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := qxd.Connect(ctx, urls, qxd.NATSOptions(nats.ReconnectWait(100*time.Millisecond), nats.DontRandomize()),
		qxd.WithRequestTimeout(10*time.Second), qxd.Logger(slog.New(logfHandler{logf})))
	if err != nil {
		t.Fatalf("connect to %s: %v", urls, err)
	}
	t.Cleanup(c.Close)
	return c
}

// drillBin returns the qxd binary the drills run: QXD_DRILL_BIN, else one built
// from this tree.
func drillBin(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("QXD_DRILL_BIN"); bin != "" {
		return bin
	}
	return buildQxd(t)
}
