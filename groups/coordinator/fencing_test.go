package coordinator_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/groups/coordinator"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// afterList is the offsets store of a coordinator whose List, once armed (arm),
// runs a function after reading: what another coordinator stores between a
// delete's listing and its purges.
type afterList struct {
	coordinator.OffsetStore
	mu   sync.Mutex
	then func()
}

func (a *afterList) arm(then func()) {
	a.mu.Lock()
	a.then = then
	a.mu.Unlock()
}

func (a *afterList) List(ctx context.Context, group string) (map[semantics.TopicPartition]offsets.Committed, error) {
	got, err := a.OffsetStore.List(ctx, group)
	a.mu.Lock()
	then := a.then
	a.then = nil
	a.mu.Unlock()
	if then != nil {
		then()
	}
	return got, err
}

// afterDelete is the state store of a coordinator whose DeleteGroup, once armed,
// runs a function after the state's purge, before the commits' purges.
type afterDelete struct {
	coordinator.StateStore
	mu   sync.Mutex
	then func()
}

func (a *afterDelete) arm(then func()) {
	a.mu.Lock()
	a.then = then
	a.mu.Unlock()
}

func (a *afterDelete) DeleteGroup(ctx context.Context, group string, rev uint64) error {
	err := a.StateStore.DeleteGroup(ctx, group, rev)
	a.mu.Lock()
	then := a.then
	a.then = nil
	a.mu.Unlock()
	if then != nil {
		then()
	}
	return err
}

// deposedRace is a coordinator of a claimed epoch whose offsets store can run a
// newer coordinator's writes between a listing and the purges after it.
type deposedRace struct {
	f      *fixture
	ctx    context.Context
	old    *coordinator.Coordinator
	offs   *afterList
	states *afterDelete
	kv     jetstream.KeyValue        // the groups bucket, the test's own (ownGroupsBucket)
	base   *coordinator.KVStateStore // claims nothing
	newer  *coordinator.KVStateStore // set by takeOver
}

func newDeposedRace(t *testing.T) *deposedRace {
	f := newFixture(t)
	r := &deposedRace{f: f, ctx: qxdtest.Context(t, 30*time.Second)}
	r.kv = ownGroupsBucket(r.ctx, t, f.js)
	r.base = coordinator.NewKVStateStore(f.nc, r.kv)
	oldStates, err := r.base.Claim(r.ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	r.offs = &afterList{OffsetStore: f.offs.WithEpoch(oldStates.Epoch())}
	r.states = &afterDelete{StateStore: oldStates}
	if r.old, err = coordinator.New(f.cfg, r.states, r.offs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.old.Close)
	return r
}

// takeOver claims a newer epoch, as a node that took the groups bucket over.
func (r *deposedRace) takeOver() {
	r.f.t.Helper()
	var err error
	if r.newer, err = r.base.Claim(r.ctx, "n2"); err != nil {
		r.f.t.Fatal(err)
	}
}

func (r *deposedRace) commit(s *offsets.Store, group string, part semantics.TopicPartition, off int64) {
	r.f.t.Helper()
	if err := s.Commit(r.ctx, group, offsets.NoGeneration, "", map[semantics.TopicPartition]offsets.Commit{part: {Offset: off}}); err != nil {
		r.f.t.Fatal(err)
	}
}

func (r *deposedRace) want(group string, part semantics.TopicPartition, off int64, epoch uint64) {
	r.f.t.Helper()
	got, err := r.f.offs.List(r.ctx, group)
	if err != nil {
		r.f.t.Fatal(err)
	}
	if c, ok := got[part]; !ok || c.Offset != off || c.Epoch != epoch {
		r.f.t.Fatalf("group %q's commit of %s: %+v (stored: %v); want offset %d of epoch %d", group, part, c, ok, off, epoch)
	}
}

// TestDeposedCoordinatorDeleteMeetsNewerWrites interleaves a group deletion on
// a coordinator deposed without noticing: it reads the claim (no newer one
// yet), lists the group's commits, reads the claim again and purges the
// group's state, then a newer coordinator claims the groups and stores a
// commit of the group, then the deposed one purges the commits. Its purges are
// at the revisions it listed, so the delete fails with NOT_COORDINATOR and the
// newer commit stays; the deposed coordinator closes. (The state's purge at
// its revision: TestDeleteGroupAtItsRevision.)
func TestDeposedCoordinatorDeleteMeetsNewerWrites(t *testing.T) {
	t.Parallel()
	part := semantics.TopicPartition{Topic: "t", Partition: 0}
	t.Run("a group of commits alone", func(t *testing.T) {
		t.Parallel()
		r := newDeposedRace(t)
		r.commit(r.f.offs.WithEpoch(1), "commits", part, 7)
		r.states.arm(func() {
			r.takeOver()
			r.commit(r.f.offs.WithEpoch(r.newer.Epoch()), "commits", part, 9)
		})
		if err := r.old.DeleteGroup(r.ctx, "commits"); !errors.Is(err, semantics.ErrNotCoordinator) {
			t.Fatalf("delete by the deposed coordinator: %v; want NOT_COORDINATOR", err)
		}
		r.want("commits", part, 9, r.newer.Epoch())
		if _, err := r.old.ListGroups(r.ctx); !errors.Is(err, semantics.ErrNotCoordinator) {
			t.Errorf("list on the deposed coordinator after its refused delete: %v; want NOT_COORDINATOR", err)
		}
	})
	t.Run("a group with a state", func(t *testing.T) {
		t.Parallel()
		r := newDeposedRace(t)
		r.f.coord = r.old
		m := r.f.stable("kept", joinReq("kept", "", ""))[0]
		if err := r.old.Leave(r.ctx, groups.LeaveRequest{Group: "kept", MemberID: m.MemberID}); err != nil {
			t.Fatal(err)
		}
		if err := r.old.CommitOffsets(r.ctx, groups.CommitRequest{Group: "kept", Generation: -1,
			Offsets: []semantics.OffsetEntry{{Topic: "t", Partition: 0, Offset: 7}}}); err != nil {
			t.Fatal(err)
		}
		r.states.arm(func() {
			r.takeOver()
			r.commit(r.f.offs.WithEpoch(r.newer.Epoch()), "kept", part, 9)
		})
		if err := r.old.DeleteGroup(r.ctx, "kept"); !errors.Is(err, semantics.ErrNotCoordinator) {
			t.Fatalf("delete by the deposed coordinator: %v; want NOT_COORDINATOR", err)
		}
		r.want("kept", part, 9, r.newer.Epoch())
	})
	t.Run("a commit through the same coordinator", func(t *testing.T) {
		t.Parallel()
		r := newDeposedRace(t)
		r.f.coord = r.old
		m := r.f.stable("again", joinReq("again", "", ""))[0]
		if err := r.old.Leave(r.ctx, groups.LeaveRequest{Group: "again", MemberID: m.MemberID}); err != nil {
			t.Fatal(err)
		}
		r.commit(r.f.offs.WithEpoch(1), "again", part, 7)
		r.states.arm(func() {
			if err := r.old.CommitOffsets(r.ctx, groups.CommitRequest{Group: "again", Generation: -1,
				Offsets: []semantics.OffsetEntry{{Topic: "t", Partition: 0, Offset: 8}}}); err != nil {
				t.Error(err)
			}
		})
		if err := r.old.DeleteGroup(r.ctx, "again"); !errors.Is(err, semantics.ErrTimeout) {
			t.Fatalf("delete met by a commit through the same coordinator: %v; want REQUEST_TIMED_OUT", err)
		}
		if err := r.old.DeleteGroup(r.ctx, "again"); err != nil {
			t.Fatalf("the delete sent again: %v", err)
		}
		if got, err := r.f.offs.List(r.ctx, "again"); err != nil || len(got) != 0 {
			t.Fatalf("the group's commits after the delete sent again: %v, %v; want none", got, err)
		}
		if _, err := r.kv.Get(r.ctx, semantics.GroupKey("again")); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("the group's state after the delete sent again: %v; want none", err)
		}
	})
}

// TestDeposedCoordinatorOffsetDeleteMeetsNewerCommit: Kafka's OffsetDelete on a
// coordinator deposed without noticing, interleaved as a group deletion
// (TestDeposedCoordinatorDeleteMeetsNewerWrites): the commit stored through the
// newer coordinator after the listing is kept, the delete fails with
// NOT_COORDINATOR, and a partition not named is untouched.
func TestDeposedCoordinatorOffsetDeleteMeetsNewerCommit(t *testing.T) {
	t.Parallel()
	p0, p1 := semantics.TopicPartition{Topic: "t", Partition: 0}, semantics.TopicPartition{Topic: "t", Partition: 1}
	r := newDeposedRace(t)
	base := r.f.offs.WithEpoch(1)
	r.commit(base, "g", p0, 7)
	r.commit(base, "g", p1, 8)
	r.offs.arm(func() {
		r.takeOver()
		r.commit(r.f.offs.WithEpoch(r.newer.Epoch()), "g", p0, 9)
	})
	if err := r.old.DeleteOffsets(r.ctx, "g", []semantics.TopicPartition{p0}); !errors.Is(err, semantics.ErrNotCoordinator) {
		t.Fatalf("offset delete by the deposed coordinator: %v; want NOT_COORDINATOR", err)
	}
	r.want("g", p0, 9, r.newer.Epoch())
	r.want("g", p1, 8, 1)
	// The current coordinator deletes it.
	cur := coordinatorOf(t, r, r.newer)
	if err := cur.DeleteOffsets(r.ctx, "g", []semantics.TopicPartition{p0}); err != nil {
		t.Fatalf("offset delete by the current coordinator: %v", err)
	}
	if got, err := r.f.offs.List(r.ctx, "g"); err != nil || len(got) != 1 {
		t.Fatalf("after the current coordinator's offset delete: %v, %v; want %s alone", got, err, p1)
	}
}

// TestDeposedCoordinatorCannotReset: a reset (qxd group seek) through a
// coordinator deposed without noticing, for a group that is empty in its view
// but has a member again under its successor, must not set back what the
// member committed through the successor: NOT_COORDINATOR, the commit kept.
func TestDeposedCoordinatorCannotReset(t *testing.T) {
	t.Parallel()
	part := semantics.TopicPartition{Topic: "t", Partition: 0}
	r := newDeposedRace(t)
	r.takeOver()
	if err := r.f.offs.WithEpoch(r.newer.Epoch()).Commit(r.ctx, "g", 1, "m1",
		map[semantics.TopicPartition]offsets.Commit{part: {Offset: 100}}); err != nil {
		t.Fatal(err)
	}
	err := r.old.ResetOffsets(r.ctx, groups.ResetRequest{Group: "g", Offsets: []semantics.OffsetEntry{{Topic: "t", Partition: 0, Offset: 0}}})
	if !errors.Is(err, semantics.ErrNotCoordinator) {
		t.Fatalf("reset by the deposed coordinator: %v; want NOT_COORDINATOR", err)
	}
	r.want("g", part, 100, r.newer.Epoch())
}

// coordinatorOf starts a coordinator on states, loaded.
func coordinatorOf(t *testing.T, r *deposedRace, states *coordinator.KVStateStore) *coordinator.Coordinator {
	t.Helper()
	c, err := coordinator.New(r.f.cfg, states, r.f.offs.WithEpoch(states.Epoch()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.Load(r.ctx); err != nil {
		t.Fatal(err)
	}
	return c
}
