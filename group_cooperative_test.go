package qxd_test

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// coopMember is a group member whose callbacks and deliveries a test inspects.
type coopMember struct {
	name string
	cons *qxd.Consumer

	mu       sync.Mutex
	revoked  [][]qxd.TopicPartition
	assigned [][]qxd.TopicPartition
	lost     [][]qxd.TopicPartition
}

func (m *coopMember) events() (revoked, assigned, lost [][]qxd.TopicPartition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.revoked), slices.Clone(m.assigned), slices.Clone(m.lost)
}

// tenure is one member's deliveries of a partition within one generation.
type tenure struct {
	member   string
	gen      int32
	from, to time.Time
}

// deliveryLog records every delivery of every member, by partition.
type deliveryLog struct {
	mu      sync.Mutex
	tenures map[int32]map[[2]any]*tenure // partition → (member, generation) → tenure
	offsets map[int32]map[int64]bool
}

func (l *deliveryLog) hook(name string) func(string, int32, []qxd.Record) {
	return func(_ string, gen int32, recs []qxd.Record) {
		now := time.Now()
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, r := range recs {
			k := [2]any{name, gen}
			tn := l.tenures[r.Partition][k]
			if tn == nil {
				if l.tenures[r.Partition] == nil {
					l.tenures[r.Partition] = map[[2]any]*tenure{}
					l.offsets[r.Partition] = map[int64]bool{}
				}
				tn = &tenure{member: name, gen: gen, from: now}
				l.tenures[r.Partition][k] = tn
			}
			tn.to = now
			l.offsets[r.Partition][r.Offset] = true
		}
	}
}

// checkExclusive fails the test when two members delivered a partition's records
// in overlapping periods (invariant 3).
func (l *deliveryLog) checkExclusive(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, byMember := range l.tenures {
		var ts []*tenure
		for _, tn := range byMember {
			ts = append(ts, tn)
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i].from.Before(ts[j].from) })
		for i := range ts {
			for j := i + 1; j < len(ts); j++ {
				if ts[i].member != ts[j].member && !ts[j].from.After(ts[i].to) {
					t.Errorf("partition %d: %s (generation %d) delivered from %s while %s (generation %d) delivered until %s",
						p, ts[j].member, ts[j].gen, ts[j].from.Format("15:04:05.000"), ts[i].member, ts[i].gen, ts[i].to.Format("15:04:05.000"))
				}
			}
		}
	}
}

func (l *deliveryLog) delivered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, os := range l.offsets {
		n += len(os)
	}
	return n
}

// startCoopMember starts a member of group on its own connection, polling until the
// test ends.
func startCoopMember(t *testing.T, ctx context.Context, n *server.Node, log *deliveryLog, name, group, topic string, opts ...qxd.ConsumerOption) *coopMember {
	t.Helper()
	m := &coopMember{name: name}
	record := func(to *[][]qxd.TopicPartition) qxd.RebalanceFunc {
		return func(_ context.Context, _ *qxd.Consumer, tps []qxd.TopicPartition) {
			m.mu.Lock()
			*to = append(*to, tps)
			m.mu.Unlock()
		}
	}
	opts = append([]qxd.ConsumerOption{qxd.Group(group), qxd.SessionTimeout(6 * time.Second),
		qxd.HeartbeatInterval(300 * time.Millisecond), qxd.AutoCommit(200 * time.Millisecond),
		qxd.OnRevoked(record(&m.revoked)), qxd.OnAssigned(record(&m.assigned)), qxd.OnLost(record(&m.lost))}, opts...)
	m.cons = qxdtest.NewConsumer(t, qxdtest.Connect(t, n), opts...)
	qxd.SetDeliveryHook(m.cons, log.hook(name))
	if err := m.cons.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	pctx, stop := context.WithCancel(ctx)
	go func() {
		defer close(done)
		for pctx.Err() == nil {
			m.cons.Poll(pctx)
		}
	}()
	t.Cleanup(func() { stop(); <-done })
	return m
}

// TestCooperativeRebalanceKeepsPartitions runs a cooperative-sticky group of two
// members sharing six partitions while a producer writes, and a third member joins.
// Each survivor revokes only the partition it hands to the newcomer: its OnRevoked
// never names a partition it keeps, it keeps the other two without losing them,
// and no partition is delivered by two members at once.
func TestCooperativeRebalanceKeepsPartitions(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 90*time.Second)
	qxdtest.CreateTopic(t, c, "coop", qxd.TopicConfig{Partitions: 6})

	produced := 0
	pstop := make(chan struct{})
	pdone := make(chan struct{})
	go func() {
		defer close(pdone)
		p, err := c.NewProducer(qxd.Linger(time.Millisecond))
		if err != nil {
			t.Error(err)
			return
		}
		defer p.Close(ctx)
		for i := 0; ; i++ {
			select {
			case <-pstop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if err := p.ProduceSync(ctx, &qxd.Record{Topic: "coop", Partition: int32(i % 6), Value: []byte("v")}); err != nil {
				t.Error(err)
				return
			}
			produced++
		}
	}()

	log := &deliveryLog{tenures: map[int32]map[[2]any]*tenure{}, offsets: map[int32]map[int64]bool{}}
	coop := qxd.Assignors("cooperative-sticky")
	a := startCoopMember(t, ctx, n, log, "a", "coop", "coop", coop)
	b := startCoopMember(t, ctx, n, log, "b", "coop", "coop", coop)
	waitAssigned(t, a.cons, 3)
	waitAssigned(t, b.cons, 3)
	waitGroupMembers(t, ctx, c, "coop", 2)
	before := map[string][]qxd.TopicPartition{"a": a.cons.Assigned(), "b": b.cons.Assigned()}
	time.Sleep(300 * time.Millisecond)

	cm := startCoopMember(t, ctx, n, log, "c", "coop", "coop", coop)
	waitAssigned(t, cm.cons, 2)
	waitAssigned(t, a.cons, 2)
	waitAssigned(t, b.cons, 2)
	waitGroupMembers(t, ctx, c, "coop", 3)
	time.Sleep(300 * time.Millisecond)
	close(pstop)
	<-pdone
	deadline := time.Now().Add(20 * time.Second)
	for log.delivered() < produced && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := log.delivered(); got < produced {
		t.Errorf("%d of %d records delivered", got, produced)
	}

	for _, m := range []*coopMember{a, b} {
		kept := m.cons.Assigned()
		revoked, _, lost := m.events()
		var all []qxd.TopicPartition
		for _, r := range revoked {
			for _, tp := range r {
				if slices.Contains(kept, tp) {
					t.Errorf("member %s: OnRevoked(%v) names %v, which it kept (%v)", m.name, r, tp, kept)
				}
			}
			all = append(all, r...)
		}
		for _, tp := range kept {
			if !slices.Contains(before[m.name], tp) {
				t.Errorf("member %s now holds %v, which it did not hold before (%v): it should only give partitions up", m.name, tp, before[m.name])
			}
		}
		if len(all) != 1 || len(lost) > 0 {
			t.Errorf("member %s revoked %v and lost %v, want one partition revoked, none lost (held %v, keeps %v)",
				m.name, revoked, lost, before[m.name], kept)
		}
		t.Logf("member %s held %v, revoked %v, keeps %v", m.name, before[m.name], revoked, kept)
	}

	// The newcomer leaves: the survivors take its partitions without giving any up.
	if err := cm.cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, a.cons, 3)
	waitAssigned(t, b.cons, 3)
	for _, m := range []*coopMember{a, b} {
		revoked, assigned, lost := m.events()
		if len(revoked) != 1 || len(lost) > 0 {
			t.Errorf("member %s: revoked %v, lost %v after the third member left, want nothing more revoked or lost", m.name, revoked, lost)
		}
		if last := assigned[len(assigned)-1]; len(last) != 1 {
			t.Errorf("member %s: OnAssigned(%v) when the third member left, want only the partition it takes over", m.name, last)
		}
	}
	log.checkExclusive(t)
}

// TestEagerStickyRebalanceStaysSticky: with the (eager) sticky assignor a member
// revokes everything at a rebalance, as Kafka's StickyAssignor does, but claims its
// last assignment when it rejoins, so it gets its partitions back and only the
// newcomer's share moves.
func TestEagerStickyRebalanceStaysSticky(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "eager", qxd.TopicConfig{Partitions: 6})
	log := &deliveryLog{tenures: map[int32]map[[2]any]*tenure{}, offsets: map[int32]map[int64]bool{}}
	sticky := qxd.Assignors("sticky")
	a := startCoopMember(t, ctx, n, log, "a", "eager", "eager", sticky)
	b := startCoopMember(t, ctx, n, log, "b", "eager", "eager", sticky)
	waitAssigned(t, a.cons, 3)
	waitAssigned(t, b.cons, 3)
	waitGroupMembers(t, ctx, c, "eager", 2)
	before := map[string][]qxd.TopicPartition{"a": a.cons.Assigned(), "b": b.cons.Assigned()}
	cm := startCoopMember(t, ctx, n, log, "c", "eager", "eager", sticky)
	waitAssigned(t, cm.cons, 2)
	waitGroupMembers(t, ctx, c, "eager", 3)
	for _, m := range []*coopMember{a, b} {
		waitAssigned(t, m.cons, 2)
		for _, tp := range m.cons.Assigned() {
			if !slices.Contains(before[m.name], tp) {
				t.Errorf("member %s now holds %v, which it did not hold before (%v)", m.name, tp, before[m.name])
			}
		}
	}
}

// TestRevokeCallbackCommits turns auto-commit off and commits in OnRevoked through
// the consumer the callback gets: the member that takes the partition over starts
// after what the first one read, with the eager and the cooperative protocol.
func TestRevokeCallbackCommits(t *testing.T) {
	t.Parallel()
	for _, assignor := range []string{"range", "cooperative-sticky"} {
		t.Run(assignor, func(t *testing.T) {
			t.Parallel()
			n := qxdtest.StartNode(t)
			c := qxdtest.Connect(t, n)
			ctx := qxdtest.Context(t, 60*time.Second)
			qxdtest.CreateTopic(t, c, "revcommit", qxd.TopicConfig{Partitions: 2})
			p, err := c.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(ctx)
			produce := func(from, to int) {
				t.Helper()
				for i := from; i < to; i++ {
					for part := range int32(2) {
						if err := p.ProduceSync(ctx, &qxd.Record{Topic: "revcommit", Partition: part, Value: []byte("v")}); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			produce(0, 10)
			commitErrs := make(chan error, 4)
			opts := []qxd.ConsumerOption{qxd.Group("revcommit"), qxd.Assignors(assignor), qxd.AutoCommit(0),
				qxd.SessionTimeout(6 * time.Second), qxd.HeartbeatInterval(300 * time.Millisecond)}
			a := qxdtest.NewConsumer(t, c, append(opts, qxd.OnRevoked(func(ctx context.Context, cons *qxd.Consumer, _ []qxd.TopicPartition) {
				commitErrs <- cons.Commit(ctx)
			}))...)
			if err := a.Subscribe(ctx, "revcommit"); err != nil {
				t.Fatal(err)
			}
			for got := 0; got < 20; {
				recs, err := a.Poll(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got += len(recs)
			}
			// a polls on, so that it rebalances; b takes a partition over.
			pctx, stop := context.WithCancel(ctx)
			polled := make(chan struct{})
			go func() {
				defer close(polled)
				for pctx.Err() == nil {
					a.Poll(pctx)
				}
			}()
			b := qxdtest.NewConsumer(t, c, opts...)
			if err := b.Subscribe(ctx, "revcommit"); err != nil {
				t.Fatal(err)
			}
			waitAssigned(t, b, 1)
			stop()
			<-polled
			select {
			case err := <-commitErrs:
				if err != nil {
					t.Fatalf("Commit in OnRevoked: %v", err)
				}
			default:
				t.Fatal("OnRevoked was not called")
			}
			produce(10, 11)
			recs, err := b.Poll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if recs[0].Offset != 10 {
				t.Fatalf("the member that took the partition over started at offset %d, want 10 (after what OnRevoked committed)", recs[0].Offset)
			}
		})
	}
}

// TestMixedAssignorsRebalanceEagerly: members that list cooperative-sticky beside
// an eager assignor rebalance eagerly, as in Kafka, though the group picks
// cooperative-sticky: when a third member joins, every partition is assigned again
// (none left withheld for an owner that already gave it up), and none is read by
// two members at once.
func TestMixedAssignorsRebalanceEagerly(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "mixed", qxd.TopicConfig{Partitions: 6})
	log := &deliveryLog{tenures: map[int32]map[[2]any]*tenure{}, offsets: map[int32]map[int64]bool{}}
	mixed := qxd.Assignors("cooperative-sticky", "range")
	a := startCoopMember(t, ctx, n, log, "a", "mixed", "mixed", mixed)
	b := startCoopMember(t, ctx, n, log, "b", "mixed", "mixed", mixed)
	waitAssigned(t, a.cons, 3)
	waitAssigned(t, b.cons, 3)
	cm := startCoopMember(t, ctx, n, log, "c", "mixed", "mixed", mixed)
	for _, m := range []*coopMember{a, b, cm} {
		waitAssigned(t, m.cons, 2)
	}
	d := waitGroupMembers(t, ctx, c, "mixed", 3)
	if d.Protocol != "cooperative-sticky" {
		t.Fatalf("the group picked %q, want cooperative-sticky", d.Protocol)
	}
	revoked, _, _ := a.events()
	if len(revoked) == 0 || len(revoked[len(revoked)-1]) != 3 {
		t.Fatalf("member a revoked %v, want all three of its partitions at once (eager)", revoked)
	}
	log.checkExclusive(t)
}
