package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/groups/coordinator"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// manualClock runs timers only when the test advances it: timeout logic is tested
// without sleeping.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	c       *manualClock
	due     time.Time
	f       func()
	stopped bool
}

func newClock() *manualClock { return &manualClock{now: time.Unix(1_800_000_000, 0)} }

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) AfterFunc(d time.Duration, f func()) coordinator.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{c: c, due: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves time forward by d, firing due timers in order (synchronously).
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].due.Before(c.timers[j].due) })
		var next *manualTimer
		for len(c.timers) > 0 {
			t := c.timers[0]
			if t.stopped {
				c.timers = c.timers[1:]
				continue
			}
			if !t.due.After(end) {
				next = t
				c.timers = c.timers[1:]
				t.stopped = true
				c.now = t.due
			}
			break
		}
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		next.f()
	}
}

// Jump moves time forward by d at once, then fires the timers that came due, late:
// as a process paused (SIGSTOP, a frozen VM) sees its timers when it runs again.
func (c *manualClock) Jump(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *manualTimer
		for i, t := range c.timers {
			if !t.stopped && !t.due.After(c.now) {
				next = t
				c.timers = append(c.timers[:i:i], c.timers[i+1:]...)
				t.stopped = true
				break
			}
		}
		c.mu.Unlock()
		if next == nil {
			return
		}
		next.f()
	}
}

type fixture struct {
	t      *testing.T
	clock  *manualClock
	coord  *coordinator.Coordinator
	kv     jetstream.KeyValue
	states *coordinator.KVStateStore
	offs   *offsets.Store
	cfg    coordinator.Config
	nc     *nats.Conn
	js     jetstream.JetStream
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	n := qxdtest.StartNode(t)
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := qxdtest.Context(t, 30*time.Second)
	kv, err := js.KeyValue(ctx, semantics.GroupsBucket)
	if err != nil {
		t.Fatal(err)
	}
	offs, err := offsets.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, clock: newClock(), kv: kv, states: coordinator.NewKVStateStore(nc, kv), offs: offs, nc: nc, js: js}
	f.cfg = coordinator.DefaultConfig()
	f.cfg.Clock = f.clock
	f.cfg.InitialRebalanceDelay = time.Second
	f.coord = f.newCoordinator()
	return f
}

// ownGroupsBucket moves the fixture's state store to a groups bucket of the
// test's own (see ownGroupsBucket), for tests that claim epochs.
func (f *fixture) ownGroupsBucket(ctx context.Context) {
	f.t.Helper()
	f.kv = ownGroupsBucket(ctx, f.t, f.js)
	f.states = coordinator.NewKVStateStore(f.nc, f.kv)
}

func (f *fixture) newCoordinator() *coordinator.Coordinator {
	c, err := coordinator.New(f.cfg, f.states, f.offs)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(c.Close)
	return c
}

const (
	session   = 10 * time.Second
	rebalance = 5 * time.Second
)

func joinReq(group, member, instance string) groups.JoinRequest {
	md := groups.EncodeMetadata(groups.ConsumerMetadata{Topics: []string{"t"}})
	return groups.JoinRequest{Group: group, MemberID: member, InstanceID: instance, ClientID: "c",
		SessionTimeout: session, RebalanceTimeout: rebalance, ProtocolType: groups.ConsumerProtocolType,
		Protocols: []groups.Protocol{{Name: "range", Metadata: md}}}
}

type joinOut struct {
	resp groups.JoinResponse
	err  error
}

// join starts a join in the background.
func (f *fixture) join(req groups.JoinRequest) chan joinOut {
	ch := make(chan joinOut, 1)
	go func() {
		r, err := f.coord.Join(context.Background(), req)
		ch <- joinOut{r, err}
	}()
	return ch
}

func wait[T any](t *testing.T, ch chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("coordinator did not answer")
	}
	var zero T
	return zero
}

// pending reports whether ch has no answer yet (after giving the coordinator a moment).
func pending[T any](ch chan T) bool {
	select {
	case v := <-ch:
		ch <- v
		return false
	case <-time.After(100 * time.Millisecond):
		return true
	}
}

// stable brings members through join and sync to a stable generation; the leader
// assigns each member what assign says.
func (f *fixture) stable(group string, reqs ...groups.JoinRequest) []groups.JoinResponse {
	f.t.Helper()
	var chans []chan joinOut
	for _, r := range reqs {
		chans = append(chans, f.join(r))
		f.waitMembers(group, len(chans))
	}
	f.clock.Advance(f.cfg.InitialRebalanceDelay) // an empty group's first join phase waits for more members
	var joins []groups.JoinResponse
	for _, ch := range chans {
		o := wait(f.t, ch)
		if o.err != nil {
			f.t.Fatalf("join: %v", o.err)
		}
		joins = append(joins, o.resp)
	}
	syncs := make(chan error, len(joins))
	for _, j := range joins {
		req := groups.SyncRequest{Group: group, MemberID: j.MemberID, Generation: j.Generation}
		if j.Leader == j.MemberID {
			req.Assignments = map[string][]byte{}
			for i, m := range j.Members {
				req.Assignments[m.MemberID] = groups.EncodeAssignment(groups.ConsumerAssignment{
					Partitions: []semantics.TopicPartition{{Topic: "t", Partition: int32(i)}}})
			}
		}
		go func() {
			_, err := f.coord.Sync(context.Background(), req)
			syncs <- err
		}()
	}
	for range joins {
		if err := wait(f.t, syncs); err != nil {
			f.t.Fatalf("sync: %v", err)
		}
	}
	return joins
}

func (f *fixture) describe(group string) groups.GroupDescription {
	f.t.Helper()
	d, err := f.coord.DescribeGroup(context.Background(), group)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) waitMembers(group string, n int) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := f.coord.DescribeGroup(context.Background(), group)
		if err == nil && len(d.Members) >= n {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("group %s never had %d members", group, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fixture) heartbeat(group string, j groups.JoinResponse) error {
	return f.coord.Heartbeat(context.Background(), groups.HeartbeatRequest{Group: group, MemberID: j.MemberID, Generation: j.Generation})
}

func TestJoinSyncStable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	joins := f.stable("g", joinReq("g", "", ""), joinReq("g", "", ""))
	d := f.describe("g")
	if d.State != groups.Stable || d.Generation != 1 || len(d.Members) != 2 || d.Protocol != "range" {
		t.Fatalf("after join and sync: %+v", d)
	}
	for _, m := range d.Members {
		if len(m.Partitions) != 1 {
			t.Fatalf("member %s has %v", m.MemberID, m.Partitions)
		}
	}
	if joins[0].Leader != joins[1].Leader || joins[0].Generation != joins[1].Generation {
		t.Fatalf("members disagree: %+v", joins)
	}
	for _, j := range joins {
		if err := f.heartbeat("g", j); err != nil {
			t.Fatalf("heartbeat in a stable group: %v", err)
		}
	}
}

// A coordinator whose process did not run for longer than a session (paused, then
// woken) finds its members' session timers overdue: their heartbeats could not
// reach it, so it keeps them, with a new session, rather than remove all of them
// and rebalance. A member that then stays silent is still removed.
func TestSessionTimersFiringLateAfterAPauseKeepMembers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	joins := f.stable("g", joinReq("g", "", ""), joinReq("g", "", ""))
	gen := f.describe("g").Generation
	f.clock.Jump(session + 15*time.Second)
	d := f.describe("g")
	if len(d.Members) != 2 || d.State != groups.Stable || d.Generation != gen {
		t.Fatalf("after the coordinator's own pause: %+v (want both members, stable, generation %d)", d, gen)
	}
	if err := f.heartbeat("g", joins[0]); err != nil {
		t.Fatalf("heartbeat after the coordinator's pause: %v", err)
	}
	// joins[0] heartbeats every 3s, joins[1] stays silent past its new session.
	for range 4 {
		f.clock.Advance(3 * time.Second)
		_ = f.heartbeat("g", joins[0])
	}
	d = f.describe("g")
	if len(d.Members) != 1 || d.Members[0].MemberID != joins[0].MemberID {
		t.Fatalf("a silent member after its new session: %+v (want it removed)", d)
	}
}

// A save whose acknowledgement was lost (the groups bucket changed leaders as it
// was stored) leaves the coordinator with a revision older than the stored one,
// though what is stored is its own state. Its next save must still go through, not
// fail on the revision forever and leave the group unable to change.
func TestGroupSavedAfterAStaleRevision(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	joins := f.stable("g", joinReq("g", "", ""))
	e, err := f.kv.Get(ctx, semantics.GroupKey("g"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.kv.Put(ctx, semantics.GroupKey("g"), e.Value()); err != nil {
		t.Fatal(err)
	}
	if err := f.coord.Leave(ctx, groups.LeaveRequest{Group: "g", MemberID: joins[0].MemberID}); err != nil {
		t.Fatalf("leave after the stored revision moved on: %v", err)
	}
	st, err := f.states.LoadGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || len(st[0].Members) != 0 || st[0].State != groups.Empty {
		t.Fatalf("stored after the last member left: %+v (want the group empty)", st)
	}
}

func TestSessionTimeoutRemovesMember(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	joins := f.stable("g", joinReq("g", "", ""), joinReq("g", "", ""))
	alive, dead := joins[0], joins[1]
	// alive heartbeats every 3s, dead never again.
	for i := 0; i < 3; i++ {
		f.clock.Advance(3 * time.Second)
		if err := f.heartbeat("g", alive); err != nil {
			t.Fatalf("heartbeat at %ds: %v", 3*(i+1), err)
		}
	}
	f.clock.Advance(2 * time.Second) // 11s since dead's last contact
	d := f.describe("g")
	if len(d.Members) != 1 || d.Members[0].MemberID != alive.MemberID || d.State != groups.PreparingRebalance {
		t.Fatalf("after the session timeout: %+v", d)
	}
	if err := f.heartbeat("g", alive); !errors.Is(err, semantics.ErrRebalanceInProgress) {
		t.Fatalf("heartbeat during the rebalance: %v", err)
	}
	if err := f.heartbeat("g", dead); !errors.Is(err, semantics.ErrUnknownMemberID) {
		t.Fatalf("heartbeat of the removed member: %v", err)
	}
	// The survivor rejoins; the dead member's lease ended with its session.
	o := wait(t, f.join(joinReq("g", alive.MemberID, "")))
	if o.err != nil || o.resp.Generation != 2 || len(o.resp.Members) != 1 {
		t.Fatalf("rejoin: %+v %v", o.resp, o.err)
	}
}

// TestRebalanceWaitsForRemovedMembersLease: a member that does not rejoin is removed
// at the rebalance timeout, but the new generation starts only when its lease (last
// good heartbeat + session timeout) has ended, since it may still be delivering.
func TestRebalanceWaitsForRemovedMembersLease(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	joins := f.stable("g", joinReq("g", "", ""), joinReq("g", "", ""))
	f.clock.Advance(time.Second)
	for _, j := range joins {
		if err := f.heartbeat("g", j); err != nil {
			t.Fatal(err)
		}
	}
	// A third member joins; only the first old member rejoins.
	newcomer := f.join(joinReq("g", "", ""))
	f.waitMembers("g", 3)
	rejoin := f.join(joinReq("g", joins[0].MemberID, ""))
	if !pending(rejoin) { // also lets the rejoin reach the coordinator
		t.Fatalf("rejoin answered before the join phase ended: %+v", <-rejoin)
	}
	f.clock.Advance(rebalance) // rebalance timeout: joins[1] is removed
	if !pending(newcomer) || !pending(rejoin) {
		t.Fatal("the generation started while the removed member's lease was still running")
	}
	f.clock.Advance(session - rebalance) // its lease (last heartbeat + session) ends
	for _, ch := range []chan joinOut{newcomer, rejoin} {
		o := wait(t, ch)
		if o.err != nil || o.resp.Generation != 2 {
			t.Fatalf("join after the lease ended: %+v %v", o.resp, o.err)
		}
	}
	if d := f.describe("g"); len(d.Members) != 2 {
		t.Fatalf("members: %+v", d.Members)
	}
}

func TestCommitFencing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	joins := f.stable("g", joinReq("g", "", ""))
	tp := semantics.TopicPartition{Topic: "t", Partition: 0}
	commit := func(member string, gen int32, off int64) error {
		return f.coord.CommitOffsets(ctx, groups.CommitRequest{Group: "g", MemberID: member, Generation: gen,
			Offsets: []semantics.OffsetEntry{{Topic: tp.Topic, Partition: tp.Partition, Offset: off}}})
	}
	if err := commit(joins[0].MemberID, 1, 10); err != nil {
		t.Fatalf("commit of the current generation: %v", err)
	}
	cases := []struct {
		name   string
		member string
		gen    int32
		want   error
	}{
		{"older generation", joins[0].MemberID, 0, semantics.ErrIllegalGeneration},
		{"newer generation", joins[0].MemberID, 5, semantics.ErrIllegalGeneration},
		{"unknown member", "ghost", 1, semantics.ErrUnknownMemberID},
		{"no member while the group has one", "", -1, semantics.ErrNonEmptyGroup},
	}
	for _, tc := range cases {
		if err := commit(tc.member, tc.gen, 99); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	entries, err := f.coord.FetchOffsets(ctx, groups.FetchRequest{Group: "g"})
	got := map[semantics.TopicPartition]semantics.OffsetEntry{}
	for _, e := range entries {
		got[semantics.TopicPartition{Topic: e.Topic, Partition: e.Partition}] = e
	}
	if err != nil || got[tp].Offset != 10 || got[tp].Generation != 1 || got[tp].Member != joins[0].MemberID {
		t.Fatalf("after rejected commits: %+v %v", got, err)
	}
	// A second member joins: during CompletingRebalance commits are refused.
	second := f.join(joinReq("g", "", ""))
	f.waitMembers("g", 2)
	first := f.join(joinReq("g", joins[0].MemberID, ""))
	o1, o2 := wait(t, first), wait(t, second)
	if o1.err != nil || o2.err != nil {
		t.Fatal(o1.err, o2.err)
	}
	if err := commit(o1.resp.MemberID, o1.resp.Generation, 11); !errors.Is(err, semantics.ErrRebalanceInProgress) {
		t.Fatalf("commit before the assignment: %v", err)
	}
	if err := commit(joins[0].MemberID, 1, 11); !errors.Is(err, semantics.ErrIllegalGeneration) {
		t.Fatalf("commit of generation 1 after generation 2 started: %v", err)
	}
}

// A commit of -1 or -2 clears the partition's position: FetchOffsets leaves it
// out unless asked for logical offsets (the Kafka door), the group still exists,
// and a group starting without stored state starts above the clear's generation,
// so that the store, which fences by generation, takes its members' commits.
func TestCommitClearKeepsGeneration(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	tp := semantics.TopicPartition{Topic: "t", Partition: 0}
	if err := f.offs.Commit(ctx, "gc", 7, "old", map[semantics.TopicPartition]offsets.Commit{tp: {Offset: offsets.Earliest}}); err != nil {
		t.Fatalf("clear at generation 7: %v", err)
	}
	for _, logical := range []bool{false, true} {
		got, err := f.coord.FetchOffsets(ctx, groups.FetchRequest{Group: "gc", Logical: logical})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 0, true: 1}[logical]; len(got) != want || (logical && got[0].Offset != offsets.Earliest) {
			t.Errorf("FetchOffsets with Logical %v: %+v, want %d entries (-2 when logical)", logical, got, want)
		}
	}
	if d := f.describe("gc"); d.State != groups.Empty {
		t.Errorf("group with a cleared offset: state %s, want Empty", d.State)
	}
	joins := f.stable("gc", joinReq("gc", "", ""))
	if joins[0].Generation <= 7 {
		t.Fatalf("generation %d after a clear at generation 7: the store would refuse its commits", joins[0].Generation)
	}
	err := f.coord.CommitOffsets(ctx, groups.CommitRequest{Group: "gc", MemberID: joins[0].MemberID, Generation: joins[0].Generation,
		Offsets: []semantics.OffsetEntry{{Topic: tp.Topic, Partition: tp.Partition, Offset: 4}}})
	if err != nil {
		t.Fatalf("commit of the new generation over the clear: %v", err)
	}
}

func TestStaticMemberRejoinsWithoutRebalance(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	joins := f.stable("g", joinReq("g", "", "inst-a"), joinReq("g", "", "inst-b"))
	before := f.describe("g")
	var a groups.JoinResponse
	for _, j := range joins {
		for _, m := range before.Members {
			if m.MemberID == j.MemberID && m.InstanceID == "inst-a" {
				a = j
			}
		}
	}
	// inst-a stops cleanly (keeps its membership, gives up its lease) and restarts.
	if err := f.coord.Leave(ctx, groups.LeaveRequest{Group: "g", MemberID: a.MemberID, InstanceID: "inst-a", KeepMembership: true}); err != nil {
		t.Fatal(err)
	}
	o := wait(t, f.join(joinReq("g", "", "inst-a")))
	if o.err != nil || !o.resp.SkipAssignment || o.resp.Generation != a.Generation || o.resp.MemberID == a.MemberID {
		t.Fatalf("static rejoin: %+v %v", o.resp, o.err)
	}
	s, err := f.coord.Sync(ctx, groups.SyncRequest{Group: "g", MemberID: o.resp.MemberID, InstanceID: "inst-a", Generation: o.resp.Generation})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := groups.DecodeAssignment(s.Assignment)
	var want []semantics.TopicPartition
	for _, m := range before.Members {
		if m.InstanceID == "inst-a" {
			want = m.Partitions
		}
	}
	if len(got.Partitions) != 1 || got.Partitions[0] != want[0] {
		t.Fatalf("assignment after restart %v, want %v", got.Partitions, want)
	}
	if d := f.describe("g"); d.Generation != before.Generation || d.State != groups.Stable {
		t.Fatalf("the restart rebalanced: %+v", d)
	}
	err = f.coord.Heartbeat(ctx, groups.HeartbeatRequest{Group: "g", MemberID: a.MemberID, InstanceID: "inst-a", Generation: a.Generation})
	if !errors.Is(err, semantics.ErrFencedInstanceID) {
		t.Fatalf("heartbeat of the replaced member id: %v", err)
	}
}

// TestStaticRestartAfterCrashWaitsForLease: a static member that crashed (no leave)
// and restarts gets its partitions back only after the crashed process's lease.
func TestStaticRestartAfterCrashWaitsForLease(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	joins := f.stable("g", joinReq("g", "", "inst-a"))
	f.clock.Advance(2 * time.Second)
	o := wait(t, f.join(joinReq("g", "", "inst-a")))
	if o.err != nil || !o.resp.SkipAssignment {
		t.Fatalf("static rejoin: %+v %v", o.resp, o.err)
	}
	ch := make(chan error, 1)
	go func() {
		_, err := f.coord.Sync(ctx, groups.SyncRequest{Group: "g", MemberID: o.resp.MemberID, InstanceID: "inst-a", Generation: o.resp.Generation})
		ch <- err
	}()
	if !pending(ch) {
		t.Fatal("the restarted member got its partitions while the crashed one's lease ran")
	}
	f.clock.Advance(session) // the old lease (sync at 0 + session) has ended
	if err := wait(t, ch); err != nil {
		t.Fatal(err)
	}
	_ = joins
}

// TestStaticUnleasedRestartTakesPlaceAtOnce: a static Kafka client (Unleased) that
// stopped without leaving and restarts, its metadata changed (a Kafka client's
// names the partitions it owned), takes its place at once: the same generation, no
// rebalance, its assignment without waiting for its predecessor's session; the
// predecessor's member id is fenced.
func TestStaticUnleasedRestartTakesPlaceAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	a0, b0 := joinReq("g", "", "inst-a"), joinReq("g", "", "inst-b")
	a0.Unleased, b0.Unleased = true, true
	joins := f.stable("g", a0, b0)
	before := f.describe("g")
	var old groups.JoinResponse
	var want []semantics.TopicPartition
	for _, m := range before.Members {
		if m.InstanceID == "inst-a" {
			want = m.Partitions
			for _, j := range joins {
				if j.MemberID == m.MemberID {
					old = j
				}
			}
		}
	}
	f.clock.Advance(2 * time.Second)
	again := joinReq("g", "", "inst-a")
	again.Unleased = true
	again.Protocols[0].Metadata = append(again.Protocols[0].Metadata, 1) // what it owned, gone with the process
	o := wait(t, f.join(again))
	if o.err != nil || !o.resp.SkipAssignment || o.resp.Generation != before.Generation || o.resp.MemberID == old.MemberID {
		t.Fatalf("static rejoin: %+v %v", o.resp, o.err)
	}
	ch := make(chan error, 1)
	var got groups.ConsumerAssignment
	go func() {
		s, err := f.coord.Sync(ctx, groups.SyncRequest{Group: "g", MemberID: o.resp.MemberID, InstanceID: "inst-a", Generation: o.resp.Generation})
		got, _ = groups.DecodeAssignment(s.Assignment)
		ch <- err
	}()
	if pending(ch) {
		t.Fatal("the restarted Kafka member waits for its predecessor's lease")
	}
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Partitions) != fmt.Sprint(want) {
		t.Fatalf("assignment after restart %v, want %v", got.Partitions, want)
	}
	if d := f.describe("g"); d.Generation != before.Generation || d.State != groups.Stable {
		t.Fatalf("the restart rebalanced: %+v", d)
	}
	err := f.coord.Heartbeat(ctx, groups.HeartbeatRequest{Group: "g", MemberID: old.MemberID, InstanceID: "inst-a", Generation: old.Generation})
	if !errors.Is(err, semantics.ErrFencedInstanceID) {
		t.Fatalf("heartbeat of the replaced member id: %v", err)
	}

}

func TestLeaveAndTakeover(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	joins := f.stable("g", joinReq("g", "", ""), joinReq("g", "", ""))
	// A new coordinator (another node) takes the stable group over.
	f.coord.Close()
	if err := f.heartbeat("g", joins[0]); !errors.Is(err, semantics.ErrNotCoordinator) {
		t.Fatalf("heartbeat to a closed coordinator: %v", err)
	}
	f.coord = f.newCoordinator()
	if err := f.coord.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for _, j := range joins {
		if err := f.heartbeat("g", j); err != nil {
			t.Fatalf("heartbeat after takeover: %v", err)
		}
	}
	if d := f.describe("g"); d.State != groups.Stable || d.Generation != 1 || len(d.Members) != 2 {
		t.Fatalf("after takeover: %+v", d)
	}
	if err := f.coord.DeleteGroup(ctx, "g"); !errors.Is(err, semantics.ErrNonEmptyGroup) {
		t.Fatalf("delete of a group with members: %v", err)
	}
	if err := f.coord.ResetOffsets(ctx, groups.ResetRequest{Group: "g", Offsets: []semantics.OffsetEntry{{Topic: "t"}}}); !errors.Is(err, semantics.ErrNonEmptyGroup) {
		t.Fatalf("reset of a group with members: %v", err)
	}
	// Both leave: the group ends Empty.
	for _, j := range joins {
		if err := f.coord.Leave(ctx, groups.LeaveRequest{Group: "g", MemberID: j.MemberID}); err != nil {
			t.Fatalf("leave: %v", err)
		}
	}
	if d := f.describe("g"); d.State != groups.Empty || len(d.Members) != 0 {
		t.Fatalf("after everyone left: %+v", d)
	}
	if err := f.coord.DeleteGroup(ctx, "g"); err != nil {
		t.Fatalf("delete of an empty group: %v", err)
	}
	if _, err := f.coord.DescribeGroup(ctx, "g"); !errors.Is(err, semantics.ErrGroupIDNotFound) {
		t.Fatalf("describe after delete: %v", err)
	}
}

func TestJoinBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	bad := joinReq("", "", "")
	if _, err := f.coord.Join(ctx, bad); !errors.Is(err, semantics.ErrInvalidGroupID) {
		t.Errorf("empty group id: %v", err)
	}
	short := joinReq("g", "", "")
	short.SessionTimeout = time.Millisecond
	if _, err := f.coord.Join(ctx, short); !errors.Is(err, semantics.ErrInvalidSessionTimeout) {
		t.Errorf("1ms session: %v", err)
	}
	f.stable("g", joinReq("g", "", ""))
	other := joinReq("g", "", "")
	other.Protocols = []groups.Protocol{{Name: "sticky"}}
	if _, err := f.coord.Join(ctx, other); !errors.Is(err, semantics.ErrInconsistentGroupProtocol) {
		t.Errorf("assignor not shared: %v", err)
	}
	if _, err := f.coord.Join(ctx, joinReq("g", "nobody", "")); !errors.Is(err, semantics.ErrUnknownMemberID) {
		t.Errorf("unknown member id: %v", err)
	}
}

// TestRejoinKeepsLease: a member of a cooperative group rejoins still reading its
// partitions, then is cut off; its static instance restarts as a new member, whose
// sync waits until the lease from the old member's last sync has ended. A rejoin
// does not end a lease.
func TestRejoinKeepsLease(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	joins := f.stable("g", joinReq("g", "", "inst-a"))
	f.clock.Advance(time.Second)
	rejoin := joinReq("g", joins[0].MemberID, "inst-a")
	if o := wait(t, f.join(rejoin)); o.err != nil {
		t.Fatalf("rejoin: %v", o.err)
	}
	f.clock.Advance(time.Second)
	o := wait(t, f.join(joinReq("g", "", "inst-a")))
	if o.err != nil {
		t.Fatalf("restart: %v", o.err)
	}
	ch := make(chan error, 1)
	go func() {
		req := groups.SyncRequest{Group: "g", MemberID: o.resp.MemberID, InstanceID: "inst-a", Generation: o.resp.Generation}
		if o.resp.Leader == o.resp.MemberID {
			req.Assignments = map[string][]byte{o.resp.MemberID: groups.EncodeAssignment(groups.ConsumerAssignment{
				Partitions: []semantics.TopicPartition{{Topic: "t", Partition: 0}}})}
		}
		_, err := f.coord.Sync(ctx, req)
		ch <- err
	}()
	if !pending(ch) {
		t.Fatal("the restarted member got its partitions while the member that rejoined could still read them")
	}
	f.clock.Advance(session) // the lease from the first sync has ended
	if err := wait(t, ch); err != nil {
		t.Fatal(err)
	}
}

// A first join sent again with its key — its answer was lost with the client's
// connection — is the member the first one made, while the join phase runs and
// after it ended, not a second member that the group would wait for until its
// session timeout.
func TestFirstJoinSentAgainWithItsKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	req := joinReq("g", "", "")
	req.JoinKey = "k1"
	first := f.join(req)
	f.waitMembers("g", 1)
	again := f.join(req)
	if o := wait(t, first); !errors.Is(o.err, semantics.ErrRebalanceInProgress) {
		t.Fatalf("the first join, sent again during the join phase: %+v, want it superseded", o)
	}
	f.clock.Advance(f.cfg.InitialRebalanceDelay)
	o := wait(t, again)
	if o.err != nil {
		t.Fatal(o.err)
	}
	if d := f.describe("g"); len(d.Members) != 1 {
		t.Fatalf("after the join sent again during the join phase: %d members, want 1", len(d.Members))
	}
	third := f.join(req)
	if pending(third) {
		f.clock.Advance(f.cfg.InitialRebalanceDelay)
	}
	if o3 := wait(t, third); o3.err != nil || o3.resp.MemberID != o.resp.MemberID {
		t.Fatalf("the first join sent again after the join phase: %+v, want member %s", o3, o.resp.MemberID)
	}
	if d := f.describe("g"); len(d.Members) != 1 {
		t.Fatalf("after the join sent again after the join phase: %d members, want 1", len(d.Members))
	}
}

// TestDeposedCoordinatorStopsActingForTheGroup runs two coordinators over one
// groups bucket, each with its own claimed epoch: the old one brings m1 and m2 to
// a stable generation 1, then a new one takes the group over (Load) while the old
// one has not noticed (its node lost the bucket). On the new one m1 leaves and m2
// rejoins, alone in generation 2, and takes every partition; on the old one m2
// leaves and m1 rejoins. The old one's generation 2 must not be stored, whether
// the new one saved its own first or not yet (it would give m1 and m2 the same
// partitions in one generation): m1's join gets NOT_COORDINATOR, and so does every
// later request to the old coordinator for the group, so that m1 looks for the
// coordinator again.
func TestDeposedCoordinatorStopsActingForTheGroup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		newFirst bool
	}{
		{"the new coordinator saved first", true},
		{"the new coordinator saved nothing since its load", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			deposedCoordinator(t, tc.newFirst)
		})
	}
}

func deposedCoordinator(t *testing.T, newFirst bool) {
	f := newFixture(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	f.ownGroupsBucket(ctx)
	base := f.states
	var err error
	if f.states, err = base.Claim(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	f.coord = f.newCoordinator()
	old := f.coord
	joins := f.stable("g", joinReq("g", "", ""), joinReq("g", "", ""))
	m1, m2 := joins[0], joins[1]

	newStates, err := base.Claim(ctx, "n2")
	if err != nil {
		t.Fatal(err)
	}
	f.states = newStates
	nw := f.newCoordinator()
	if err := nw.Load(ctx); err != nil {
		t.Fatal(err)
	}
	joinOn := func(c *coordinator.Coordinator, j groups.JoinResponse) chan joinOut {
		ch := make(chan joinOut, 1)
		go func() {
			req := joinReq("g", j.MemberID, "")
			r, err := c.Join(context.Background(), req)
			ch <- joinOut{r, err}
		}()
		return ch
	}
	all := groups.EncodeAssignment(groups.ConsumerAssignment{Partitions: []semantics.TopicPartition{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}}})

	// The new coordinator: m1 leaves, m2 rejoins and takes both partitions.
	onNew := func() {
		t.Helper()
		if err := nw.Leave(ctx, groups.LeaveRequest{Group: "g", MemberID: m1.MemberID}); err != nil {
			t.Fatalf("m1 leaves on the new coordinator: %v", err)
		}
		o := wait(t, joinOn(nw, m2))
		if o.err != nil || o.resp.Generation != 2 || o.resp.Leader != m2.MemberID {
			t.Fatalf("m2 rejoins on the new coordinator: %+v (%v); want generation 2 led by m2", o.resp, o.err)
		}
		if _, err := nw.Sync(ctx, groups.SyncRequest{Group: "g", MemberID: m2.MemberID, Generation: 2,
			Assignments: map[string][]byte{m2.MemberID: all}}); err != nil {
			t.Fatalf("m2 syncs on the new coordinator: %v", err)
		}
	}
	if newFirst {
		onNew()
	}

	// The old coordinator, deposed: m2 leaves, m1 rejoins.
	if err := old.Leave(ctx, groups.LeaveRequest{Group: "g", MemberID: m2.MemberID}); err != nil {
		t.Fatalf("m2 leaves on the old coordinator: %v", err)
	}
	o := wait(t, joinOn(old, m1))
	if !errors.Is(o.err, semantics.ErrNotCoordinator) {
		t.Fatalf("m1 rejoins on the deposed coordinator: %+v (%v); want NOT_COORDINATOR", o.resp, o.err)
	}
	if err := old.Heartbeat(ctx, groups.HeartbeatRequest{Group: "g", MemberID: m1.MemberID, Generation: 2}); !errors.Is(err, semantics.ErrNotCoordinator) {
		t.Fatalf("m1's heartbeat to the deposed coordinator: %v; want NOT_COORDINATOR", err)
	}

	if !newFirst {
		onNew()
	}
	st, err := newStates.LoadGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Generation != 2 || len(st[0].Members) != 1 || st[0].Members[0].MemberID != m2.MemberID ||
		st[0].Epoch != newStates.Epoch() {
		t.Fatalf("stored: %+v; want the new coordinator's generation 2, m2 alone", st)
	}
	if err := nw.Heartbeat(ctx, groups.HeartbeatRequest{Group: "g", MemberID: m2.MemberID, Generation: 2}); err != nil {
		t.Fatalf("m2's heartbeat to the new coordinator: %v", err)
	}
}

// TestDeposedCoordinatorDoesNotStart loads the groups into a coordinator whose
// epoch is older than another's that claimed one since and saved the group (a
// node that claimed its epoch, then lost the bucket to another that took over
// before this one's load ended): its load must fail with ErrDeposed and leave it
// closed, rather than serve the group and save over the newer state (its
// compare-and-set at the revision it loaded would match).
func TestDeposedCoordinatorDoesNotStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	f.ownGroupsBucket(ctx)
	base := f.states
	oldStates, err := base.Claim(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if f.states, err = base.Claim(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	f.coord = f.newCoordinator()
	joins := f.stable("g", joinReq("g", "", ""))
	f.states = oldStates
	old := f.newCoordinator()
	if err := old.Load(ctx); !errors.Is(err, coordinator.ErrDeposed) {
		t.Fatalf("load of a coordinator older than the group's: %v; want ErrDeposed", err)
	}
	if err := old.Heartbeat(ctx, groups.HeartbeatRequest{Group: "g", MemberID: joins[0].MemberID, Generation: joins[0].Generation}); !errors.Is(err, semantics.ErrNotCoordinator) {
		t.Fatalf("heartbeat to a coordinator whose load failed: %v; want NOT_COORDINATOR", err)
	}
}

// TestDeposedCoordinatorStopsAnswering: a coordinator that watches the claims
// (KVStateStore.WatchClaims) and closes when a newer one is stored answers
// NOT_COORDINATOR from then on also to what it answers without saving — a
// heartbeat that would renew a member's lease, an offset fetch, a describe, a
// list — not only at its next save. It logs how long after the newer claim its
// first heartbeat answer was NOT_COORDINATOR.
func TestDeposedCoordinatorStopsAnswering(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	f.ownGroupsBucket(ctx)
	base := f.states
	var err error
	if f.states, err = base.Claim(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	f.coord = f.newCoordinator()
	old, oldStates := f.coord, f.states
	m := f.stable("g", joinReq("g", "", ""))[0]
	hb := groups.HeartbeatRequest{Group: "g", MemberID: m.MemberID, Generation: m.Generation}
	if err := old.Heartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	var claimedAt, deposedAt atomic.Int64 // unix ns
	stop, err := oldStates.WatchClaims(ctx, func(uint64) {
		deposedAt.Store(time.Now().UnixNano())
		old.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	claimed := time.Now()
	claimedAt.Store(claimed.UnixNano())
	if _, err := base.Claim(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	acked := time.Now()
	bound := time.Now().Add(5 * time.Second)
	for {
		err := old.Heartbeat(ctx, hb)
		if errors.Is(err, semantics.ErrNotCoordinator) {
			break
		}
		if err != nil {
			t.Fatalf("heartbeat on the deposed coordinator: %v; want nil, then NOT_COORDINATOR", err)
		}
		if time.Now().After(bound) {
			t.Fatal("the deposed coordinator still renews the member's lease 5 s after a newer claim")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("newer claim stored %v after it was sent; the watch closed the coordinator %v after it was sent; first NOT_COORDINATOR %v after",
		acked.Sub(claimed).Round(100*time.Microsecond), time.Duration(deposedAt.Load()-claimedAt.Load()).Round(100*time.Microsecond),
		time.Since(claimed).Round(100*time.Microsecond))
	if _, err := old.FetchOffsets(ctx, groups.FetchRequest{Group: "g"}); !errors.Is(err, semantics.ErrNotCoordinator) {
		t.Errorf("offset fetch on the deposed coordinator: %v; want NOT_COORDINATOR", err)
	}
	if _, err := old.DescribeGroup(ctx, "g"); !errors.Is(err, semantics.ErrNotCoordinator) {
		t.Errorf("describe on the deposed coordinator: %v; want NOT_COORDINATOR", err)
	}
	if _, err := old.ListGroups(ctx); !errors.Is(err, semantics.ErrNotCoordinator) {
		t.Errorf("list on the deposed coordinator: %v; want NOT_COORDINATOR", err)
	}
}

// TestDeposedCoordinatorCannotDeleteGroups: a coordinator deposed by a newer
// claim that it has not noticed yet (no watch) must refuse to delete a group,
// with NOT_COORDINATOR, and leave its commits and state as stored: a purge is
// not a compare-and-set, and would remove what the successor stored.
func TestDeposedCoordinatorCannotDeleteGroups(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	f.ownGroupsBucket(ctx)
	base := f.states
	var err error
	if f.states, err = base.Claim(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	f.coord = f.newCoordinator()
	old := f.coord
	// "kept": a group with a stored state, now empty, and a commit; "commits":
	// one with commits only.
	m := f.stable("kept", joinReq("kept", "", ""))[0]
	commit := func(group string) {
		t.Helper()
		if err := f.offs.Commit(ctx, group, offsets.NoGeneration, "", map[semantics.TopicPartition]offsets.Commit{
			{Topic: "t", Partition: 0}: {Offset: 7}}); err != nil {
			t.Fatal(err)
		}
	}
	commit("kept")
	commit("commits")
	if err := old.Leave(ctx, groups.LeaveRequest{Group: "kept", MemberID: m.MemberID}); err != nil {
		t.Fatal(err)
	}
	if _, err := base.Claim(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	for _, group := range []string{"commits", "kept"} {
		if err := old.DeleteGroup(ctx, group); !errors.Is(err, semantics.ErrNotCoordinator) {
			t.Errorf("delete of group %q by the deposed coordinator: %v; want NOT_COORDINATOR", group, err)
		}
		if got, err := f.offs.List(ctx, group); err != nil || len(got) != 1 {
			t.Errorf("group %q's commits after the refused delete: %v, %v; want the one stored", group, got, err)
		}
	}
	if _, err := f.kv.Get(ctx, semantics.GroupKey("kept")); err != nil {
		t.Errorf("group %q's state after the refused delete: %v", "kept", err)
	}
}
