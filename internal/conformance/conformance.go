// Package conformance is a suite of Kafka-semantics checks that every front door of
// qxd must pass: consumer groups share partitions with at most one member reading a
// partition at any moment, a stalled or killed member is fenced and replaced within
// its session timeout, and nothing committed is skipped. A front door (the Go SDK
// today) implements FrontDoor; its test calls RunGroups.
package conformance

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

// FrontDoor is one way of using qxd.
type FrontDoor interface {
	// CreateTopic creates a topic or fails the test.
	CreateTopic(t *testing.T, name string, partitions int32)
	// Produce stores records and returns their partitions and offsets.
	Produce(ctx context.Context, topic string, keys, values [][]byte) ([]Position, error)
	// NewMember starts a group member subscribed to topics; its deliveries and commits
	// go to rec.
	NewMember(t *testing.T, group string, topics []string, opts MemberOptions, rec *Recorder) Member
}

// Position is where a record was stored.
type Position struct {
	Partition int32
	Offset    int64
}

// MemberOptions tunes a member.
type MemberOptions struct {
	Name           string
	SessionTimeout time.Duration
	InstanceID     string
}

// Member is one consumer group member.
type Member interface {
	// Poll returns the next records (recording them as delivered), or none when
	// ctx ends first.
	Poll(ctx context.Context) (int, error)
	// Commit commits what Poll returned.
	Commit(ctx context.Context) error
	// Close commits and leaves the group.
	Close()
	// Kill makes the member vanish: no leave, no commit, no more heartbeats.
	Kill()
	// StallHeartbeats stops the member's heartbeats while it keeps polling.
	StallHeartbeats()
	// Generation is the member's current generation.
	Generation() int32
}

// Delivery is one record handed to a member.
type Delivery struct {
	Member     string
	Generation int32
	Partition  int32
	Offset     int64
	At         time.Time
}

// CommitEvent is one successful commit.
type CommitEvent struct {
	Member    string
	Partition int32
	Offset    int64
	At        time.Time
}

// Recorder collects deliveries and commits from every member.
type Recorder struct {
	mu         sync.Mutex
	deliveries []Delivery
	commits    []CommitEvent
}

// Delivered records deliveries.
func (r *Recorder) Delivered(ds ...Delivery) {
	r.mu.Lock()
	r.deliveries = append(r.deliveries, ds...)
	r.mu.Unlock()
}

// Committed records a commit.
func (r *Recorder) Committed(cs ...CommitEvent) {
	r.mu.Lock()
	r.commits = append(r.commits, cs...)
	r.mu.Unlock()
}

func (r *Recorder) snapshot() ([]Delivery, []CommitEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deliveries), slices.Clone(r.commits)
}

// distinct reports how many distinct (partition, offset) were delivered.
func (r *Recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[Position]bool{}
	for _, d := range r.deliveries {
		seen[Position{d.Partition, d.Offset}] = true
	}
	return len(seen)
}

// RunGroups runs the consumer group scenarios against fd.
func RunGroups(t *testing.T, fd FrontDoor) {
	t.Run("JoinAndLeaveUnderLoad", func(t *testing.T) { t.Parallel(); joinAndLeaveUnderLoad(t, fd) })
	t.Run("KilledMemberReplaced", func(t *testing.T) { t.Parallel(); killedMemberReplaced(t, fd) })
	t.Run("StalledMemberFenced", func(t *testing.T) { t.Parallel(); stalledMemberFenced(t, fd) })
	t.Run("StaticMemberRestart", func(t *testing.T) { t.Parallel(); staticMemberRestart(t, fd) })
}

// pollLoop polls m until stop is closed.
func pollLoop(ctx context.Context, m Member, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			_, _ = m.Poll(pctx)
			cancel()
		}
	}()
}

type running struct {
	m    Member
	stop chan struct{}
	wg   sync.WaitGroup
}

func start(ctx context.Context, m Member) *running {
	r := &running{m: m, stop: make(chan struct{})}
	pollLoop(ctx, m, r.stop, &r.wg)
	return r
}

// halt stops polling.
func (r *running) halt() {
	close(r.stop)
	r.wg.Wait()
}

func produceKeyed(ctx context.Context, t *testing.T, fd FrontDoor, topic string, from, n int) map[int32]int64 {
	t.Helper()
	keys := make([][]byte, n)
	vals := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key-%d", (from+i)%37))
		vals[i] = []byte(fmt.Sprint(from + i))
	}
	pos, err := fd.Produce(ctx, topic, keys, vals)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	high := map[int32]int64{}
	for _, p := range pos {
		high[p.Partition] = max(high[p.Partition], p.Offset+1)
	}
	return high
}

// waitAll waits until every offset below high (per partition) was delivered.
func waitAll(ctx context.Context, t *testing.T, rec *Recorder, high map[int32]int64) {
	t.Helper()
	var want int64
	for _, h := range high {
		want += h
	}
	for int64(rec.distinct()) < want {
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d records delivered", rec.distinct(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func joinAndLeaveUnderLoad(t *testing.T, fd FrontDoor) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	fd.CreateTopic(t, "conf-load", 6)
	rec := &Recorder{}
	opts := func(name string) MemberOptions { return MemberOptions{Name: name, SessionTimeout: 2 * time.Second} }

	// A producer runs through the whole scenario.
	high := map[int32]int64{}
	var hmu sync.Mutex
	prodStop := make(chan struct{})
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for i := 0; ; i += 50 {
			select {
			case <-prodStop:
				return
			default:
			}
			h := produceKeyed(ctx, t, fd, "conf-load", i, 50)
			hmu.Lock()
			for p, o := range h {
				high[p] = max(high[p], o)
			}
			hmu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()

	a := start(ctx, fd.NewMember(t, "g-load", []string{"conf-load"}, opts("a"), rec))
	time.Sleep(700 * time.Millisecond)
	b := start(ctx, fd.NewMember(t, "g-load", []string{"conf-load"}, opts("b"), rec))
	time.Sleep(700 * time.Millisecond)
	c := start(ctx, fd.NewMember(t, "g-load", []string{"conf-load"}, opts("c"), rec))
	time.Sleep(700 * time.Millisecond)
	a.halt()
	a.m.Close()
	time.Sleep(700 * time.Millisecond)
	d := start(ctx, fd.NewMember(t, "g-load", []string{"conf-load"}, opts("d"), rec))
	time.Sleep(700 * time.Millisecond)
	close(prodStop)
	<-prodDone
	hmu.Lock()
	final := maps(high)
	hmu.Unlock()
	waitAll(ctx, t, rec, final)
	for _, r := range []*running{b, c, d} {
		r.halt()
	}
	for _, r := range []*running{b, c, d} {
		r.m.Close()
	}
	check(t, rec, final)
}

func maps(m map[int32]int64) map[int32]int64 {
	out := make(map[int32]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func killedMemberReplaced(t *testing.T, fd FrontDoor) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	fd.CreateTopic(t, "conf-kill", 6)
	rec := &Recorder{}
	const session = 2 * time.Second
	var ms []*running
	for _, name := range []string{"a", "b", "c"} {
		ms = append(ms, start(ctx, fd.NewMember(t, "g-kill", []string{"conf-kill"}, MemberOptions{Name: name, SessionTimeout: session}, rec)))
	}
	high := produceKeyed(ctx, t, fd, "conf-kill", 0, 600)
	waitAll(ctx, t, rec, high)
	// Commit, so the killed member's partitions resume from there.
	for _, r := range ms {
		_ = r.m.Commit(ctx)
	}

	victim := ms[0]
	deliveries, _ := rec.snapshot()
	owned := map[int32]bool{}
	for _, d := range deliveries {
		if d.Member == "a" {
			owned[d.Partition] = true
		}
	}
	victim.halt()
	victim.m.Kill()
	killedAt := time.Now()

	more := produceKeyed(ctx, t, fd, "conf-kill", 600, 600)
	for p, o := range more {
		high[p] = max(high[p], o)
	}
	waitAll(ctx, t, rec, high)
	deliveries, _ = rec.snapshot()
	var took time.Duration
	for p := range owned {
		first := time.Time{}
		for _, d := range deliveries {
			if d.Partition == p && d.Member != "a" && d.At.After(killedAt) && (first.IsZero() || d.At.Before(first)) {
				first = d.At
			}
		}
		if first.IsZero() {
			t.Fatalf("partition %d of the killed member was never taken over", p)
		}
		took = max(took, first.Sub(killedAt))
	}
	t.Logf("killed member's %d partitions reassigned and read after %v (session timeout %v)", len(owned), took.Round(time.Millisecond), session)
	if took > session+5*time.Second {
		t.Errorf("reassignment took %v, more than the session timeout %v plus 5s", took, session)
	}
	for _, r := range ms[1:] {
		r.halt()
		r.m.Close()
	}
	check(t, rec, high)
}

func stalledMemberFenced(t *testing.T, fd FrontDoor) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	fd.CreateTopic(t, "conf-stall", 4)
	rec := &Recorder{}
	const session = 2 * time.Second
	a := start(ctx, fd.NewMember(t, "g-stall", []string{"conf-stall"}, MemberOptions{Name: "a", SessionTimeout: session}, rec))
	b := start(ctx, fd.NewMember(t, "g-stall", []string{"conf-stall"}, MemberOptions{Name: "b", SessionTimeout: session}, rec))
	high := produceKeyed(ctx, t, fd, "conf-stall", 0, 400)
	waitAll(ctx, t, rec, high)

	// a keeps polling but stops heartbeating; records keep coming.
	a.m.StallHeartbeats()
	stalledAt := time.Now()
	stop := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		for i := 400; ; i += 20 {
			select {
			case <-stop:
				return
			default:
			}
			h := produceKeyed(ctx, t, fd, "conf-stall", i, 20)
			for p, o := range h {
				rec.mu.Lock()
				high[p] = max(high[p], o)
				rec.mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(2*session + time.Second)
	close(stop)
	pwg.Wait()
	rec.mu.Lock()
	final := maps(high)
	rec.mu.Unlock()
	waitAll(ctx, t, rec, final)
	deliveries, _ := rec.snapshot()
	var lastA time.Time
	for _, d := range deliveries {
		if d.Member == "a" && d.At.After(lastA) {
			lastA = d.At
		}
	}
	if lastA.After(stalledAt.Add(session)) {
		t.Errorf("the stalled member still received records %v after its last heartbeat (session %v)", lastA.Sub(stalledAt), session)
	}
	t.Logf("stalled member's last delivery %v after it stopped heartbeating (session %v)", lastA.Sub(stalledAt).Round(time.Millisecond), session)
	a.halt()
	b.halt()
	b.m.Close()
	a.m.Kill()
	check(t, rec, final)
}

func staticMemberRestart(t *testing.T, fd FrontDoor) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	fd.CreateTopic(t, "conf-static", 4)
	rec := &Recorder{}
	const session = 5 * time.Second
	a := start(ctx, fd.NewMember(t, "g-static", []string{"conf-static"}, MemberOptions{Name: "a1", SessionTimeout: session, InstanceID: "inst-a"}, rec))
	b := start(ctx, fd.NewMember(t, "g-static", []string{"conf-static"}, MemberOptions{Name: "b", SessionTimeout: session, InstanceID: "inst-b"}, rec))
	high := produceKeyed(ctx, t, fd, "conf-static", 0, 400)
	waitAll(ctx, t, rec, high)
	genBefore := b.m.Generation()
	deliveries, _ := rec.snapshot()
	ownedA := map[int32]bool{}
	for _, d := range deliveries {
		if d.Member == "a1" {
			ownedA[d.Partition] = true
		}
	}
	a.halt()
	a.m.Close() // a static member keeps its membership
	restarted := start(ctx, fd.NewMember(t, "g-static", []string{"conf-static"}, MemberOptions{Name: "a2", SessionTimeout: session, InstanceID: "inst-a"}, rec))
	more := produceKeyed(ctx, t, fd, "conf-static", 400, 400)
	for p, o := range more {
		high[p] = max(high[p], o)
	}
	waitAll(ctx, t, rec, high)
	if g := b.m.Generation(); g != genBefore {
		t.Errorf("generation moved from %d to %d: the static restart caused a rebalance", genBefore, g)
	}
	deliveries, _ = rec.snapshot()
	for _, d := range deliveries {
		if d.Member == "a2" && !ownedA[d.Partition] {
			t.Errorf("the restarted static member got partition %d, which it did not own", d.Partition)
		}
	}
	restarted.halt()
	b.halt()
	restarted.m.Close()
	b.m.Close()
	check(t, rec, high)
}

// check verifies the group invariants over everything recorded:
//   - every record below high was delivered at least once;
//   - for each partition, the delivery periods of different members (first to last
//     delivery within one generation) never overlap;
//   - every commit covers only delivered records (nothing committed is skipped), and
//     each member's tenure of a partition starts at or before the latest commit.
func check(t *testing.T, rec *Recorder, high map[int32]int64) {
	t.Helper()
	deliveries, commits := rec.snapshot()
	delivered := map[Position]time.Time{}
	for _, d := range deliveries {
		k := Position{d.Partition, d.Offset}
		if at, ok := delivered[k]; !ok || d.At.Before(at) {
			delivered[k] = d.At
		}
	}
	for p, h := range high {
		for o := int64(0); o < h; o++ {
			if _, ok := delivered[Position{p, o}]; !ok {
				t.Fatalf("partition %d offset %d was never delivered", p, o)
			}
		}
	}

	type tenureKey struct {
		member string
		gen    int32
		p      int32
	}
	type tenure struct {
		tenureKey
		from, to  time.Time
		firstOff  int64
		firstSeen time.Time
	}
	tenures := map[tenureKey]*tenure{}
	for _, d := range deliveries {
		k := tenureKey{d.Member, d.Generation, d.Partition}
		tn, ok := tenures[k]
		if !ok {
			tn = &tenure{tenureKey: k, from: d.At, to: d.At, firstOff: d.Offset, firstSeen: d.At}
			tenures[k] = tn
		}
		if d.At.Before(tn.from) {
			tn.from = d.At
		}
		if d.At.After(tn.to) {
			tn.to = d.At
		}
		if d.At.Before(tn.firstSeen) || d.At.Equal(tn.firstSeen) && d.Offset < tn.firstOff {
			tn.firstSeen, tn.firstOff = d.At, d.Offset
		}
	}
	byPart := map[int32][]*tenure{}
	for _, tn := range tenures {
		byPart[tn.p] = append(byPart[tn.p], tn)
	}
	for p, ts := range byPart {
		sort.Slice(ts, func(i, j int) bool { return ts[i].from.Before(ts[j].from) })
		for i := range ts {
			for j := i + 1; j < len(ts); j++ {
				if ts[i].member == ts[j].member {
					continue
				}
				if !ts[j].from.After(ts[i].to) {
					t.Errorf("partition %d: member %s (generation %d) delivered from %v while member %s (generation %d) delivered until %v",
						p, ts[j].member, ts[j].gen, ts[j].from.Format("15:04:05.000"), ts[i].member, ts[i].gen, ts[i].to.Format("15:04:05.000"))
				}
			}
		}
	}

	for _, c := range commits {
		for o := int64(0); o < c.Offset; o++ {
			at, ok := delivered[Position{c.Partition, o}]
			if !ok || at.After(c.At) {
				t.Fatalf("member %s committed partition %d at offset %d before offset %d was delivered", c.Member, c.Partition, c.Offset, o)
			}
		}
	}
	for _, tn := range tenures {
		var latest int64
		for _, c := range commits {
			if c.Partition == tn.p && c.At.Before(tn.from) {
				latest = max(latest, c.Offset)
			}
		}
		if tn.firstOff > latest {
			// Records between the commit and the tenure's start must have been
			// delivered by someone (checked above); a jump past the commit is a skip
			// only if those records were not delivered before the tenure began.
			for o := latest; o < tn.firstOff; o++ {
				if at := delivered[Position{tn.p, o}]; at.After(tn.from) {
					t.Fatalf("partition %d: member %s started at offset %d, skipping offset %d after the last commit %d",
						tn.p, tn.member, tn.firstOff, o, latest)
				}
			}
		}
	}
}

// ClusterFrontDoor is a front door over a cluster of nodes, whose coordinator node
// can be killed.
type ClusterFrontDoor interface {
	FrontDoor
	// KillCoordinator takes the node that coordinates groups away without qxd's
	// graceful stop, and returns its name. In process that is nats-server's own
	// Shutdown, which closes connections cleanly: no crash, so the scenario
	// reports no time (crash figures come from TestFaultDrill in cmd/qxd).
	KillCoordinator(t *testing.T) string
	// CommittedOffsets reads the group's committed offsets per partition.
	CommittedOffsets(ctx context.Context, group string) (map[int32]int64, error)
}

// RunGroupsCluster runs the scenarios that need a cluster.
func RunGroupsCluster(t *testing.T, fd ClusterFrontDoor) {
	t.Run("CoordinatorNodeDeath", func(t *testing.T) { coordinatorNodeDeath(t, fd) })
}

func coordinatorNodeDeath(t *testing.T, fd ClusterFrontDoor) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	fd.CreateTopic(t, "conf-coord", 6)
	rec := &Recorder{}
	const session = 10 * time.Second
	var ms []*running
	for _, name := range []string{"a", "b", "c"} {
		ms = append(ms, start(ctx, fd.NewMember(t, "g-coord", []string{"conf-coord"}, MemberOptions{Name: name, SessionTimeout: session}, rec)))
	}
	high := produceKeyed(ctx, t, fd, "conf-coord", 0, 600)
	waitAll(ctx, t, rec, high)
	for _, r := range ms {
		if err := r.m.Commit(ctx); err != nil {
			t.Fatalf("commit before the coordinator dies: %v", err)
		}
	}
	before, err := fd.CommittedOffsets(ctx, "g-coord")
	if err != nil {
		t.Fatal(err)
	}

	victim := fd.KillCoordinator(t)
	t.Logf("killed coordinator node %s", victim)

	// Commits work again once another node coordinates; nothing committed is lost.
	for {
		err := ms[0].m.Commit(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no coordinator after the node died: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("a member committed again after the coordinator node stopped")
	after, err := fd.CommittedOffsets(ctx, "g-coord")
	if err != nil {
		t.Fatal(err)
	}
	for p, off := range before {
		if after[p] < off {
			t.Fatalf("partition %d: committed offset went back from %d to %d after failover", p, off, after[p])
		}
	}
	more := produceKeyed(ctx, t, fd, "conf-coord", 600, 600)
	for p, o := range more {
		high[p] = max(high[p], o)
	}
	waitAll(ctx, t, rec, high)
	for _, r := range ms {
		r.halt()
		r.m.Close()
	}
	check(t, rec, high)
}

// LogRecord is one stored record, as read back from a partition.
type LogRecord struct {
	Offset int64
	Key    string
	Value  string
}

// FailoverFrontDoor is a cluster front door whose nodes can be killed and restarted.
type FailoverFrontDoor interface {
	ClusterFrontDoor
	// KillLeaderOf takes the node leading a partition away without qxd's graceful
	// stop (no hand-off of leaderships first). In process that is nats-server's
	// own Shutdown, which closes connections and stops its RAFT groups cleanly: it
	// is no crash, so the scenario checks invariants, not failover times (those
	// come from real processes: TestFaultDrill in cmd/qxd).
	KillLeaderOf(t *testing.T, topic string, partition int32) string
	// Nodes names the running nodes.
	Nodes() []string
	// Restart stops a node gracefully and starts it again on its data.
	Restart(t *testing.T, node string)
	// ReadLog reads every record of a topic, per partition in offset order.
	ReadLog(ctx context.Context, topic string) (map[int32][]LogRecord, error)
}

// RunFailover runs one node failure scenario, by name: "LeaderKilledUnderLoad" (a
// partition leader killed under load) or "RollingRestart" (every node restarted in
// turn). Each needs a fresh cluster, and each checks invariants 1 to 5 of docs/architecture.md.
func RunFailover(t *testing.T, fd FailoverFrontDoor, scenario string) {
	switch scenario {
	case "LeaderKilledUnderLoad":
		underLoad(t, fd, "conf-kill-leader", func(t *testing.T) {
			t.Logf("killed node %s, the leader of partition 0", fd.KillLeaderOf(t, "conf-kill-leader", 0))
		})
	case "RollingRestart":
		underLoad(t, fd, "conf-rolling", func(t *testing.T) {
			for _, n := range fd.Nodes() {
				began := time.Now()
				fd.Restart(t, n)
				t.Logf("restarted node %s in %v", n, time.Since(began).Round(time.Millisecond))
			}
		})
	default:
		t.Fatalf("no failover scenario %q", scenario)
	}
}

// underLoad runs a keyed producer and a 3-member group on topic while disrupt runs,
// then checks: every acknowledged record is stored exactly once, per key in the order
// produced, and the group read everything with its invariants kept.
func underLoad(t *testing.T, fd FailoverFrontDoor, topic string, disrupt func(*testing.T)) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	fd.CreateTopic(t, topic, 6)
	rec := &Recorder{}
	var ms []*running
	for _, name := range []string{"a", "b", "c"} {
		ms = append(ms, start(ctx, fd.NewMember(t, "g-"+topic, []string{topic}, MemberOptions{Name: name, SessionTimeout: 10 * time.Second}, rec)))
	}

	var mu sync.Mutex
	acked := map[string]Position{} // value → where it was stored
	high := map[int32]int64{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i += 20 {
			select {
			case <-stop:
				return
			default:
			}
			keys := make([][]byte, 20)
			vals := make([][]byte, 20)
			for j := range keys {
				keys[j] = []byte(fmt.Sprintf("key-%d", (i+j)%23))
				vals[j] = []byte(fmt.Sprint(i + j))
			}
			pos, err := fd.Produce(ctx, topic, keys, vals)
			if err != nil {
				t.Errorf("produce failed across the disruption: %v", err)
				return
			}
			mu.Lock()
			for j, p := range pos {
				acked[string(vals[j])] = p
				high[p.Partition] = max(high[p.Partition], p.Offset+1)
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	disrupt(t)
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	mu.Lock()
	final := maps(high)
	// No failover time is reported: an in-process node's shutdown is clean (see
	// KillLeaderOf), and would understate what a crash costs.
	t.Logf("%d records acknowledged", len(acked))
	mu.Unlock()
	waitAll(ctx, t, rec, final)
	for _, r := range ms {
		r.halt()
		r.m.Close()
	}

	log, err := fd.ReadLog(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	lastByKey := map[string]int{}
	for p, recs := range log {
		for i, r := range recs {
			if r.Offset != int64(i) {
				t.Fatalf("partition %d: offset %d at position %d: offsets are not dense", p, r.Offset, i)
			}
			stored[r.Value]++
			var v int
			fmt.Sscan(r.Value, &v)
			if prev, ok := lastByKey[r.Key]; ok && v < prev {
				t.Fatalf("key %s: %d stored after %d", r.Key, v, prev)
			}
			lastByKey[r.Key] = v
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for v, pos := range acked {
		switch stored[v] {
		case 0:
			var at string
			if recs := log[pos.Partition]; pos.Offset >= 0 && pos.Offset < int64(len(recs)) {
				at = fmt.Sprintf("; that offset holds %q (key %s)", recs[pos.Offset].Value, recs[pos.Offset].Key)
			} else {
				at = fmt.Sprintf("; the partition holds %d records", len(log[pos.Partition]))
			}
			t.Fatalf("acknowledged record %s (partition %d offset %d) is lost%s", v, pos.Partition, pos.Offset, at)
		case 1:
		default:
			t.Fatalf("record %s is stored %d times", v, stored[v])
		}
	}
	check(t, rec, final)
}
