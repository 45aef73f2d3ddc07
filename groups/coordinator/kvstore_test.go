package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/groups/coordinator"
	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// behindRounds is how many saves TestGroupSavedPastAReplicaLeftBehind makes
// after a lost one. A direct get of the groups bucket reaches the held mirror
// or the bucket's stream at random: 12 saves all miss the mirror with
// probability 2^-12.
const behindRounds = 12

// TestGroupSavedPastAReplicaLeftBehind saves a group, again and again, with a
// revision older than the stored one, the stored entry being of the group's
// own generation (a save whose acknowledgement was lost), while a member of
// the bucket's direct-get queue group holds only the bucket's first entry
// (qxdtest.HoldBucketBehind), as a replica behind the leader does. Each save
// must go through, reading the stored revision from the leader, not fail on
// the revision the replica gives. A newer generation stored by another
// coordinator must still make the save fail, and stay stored.
func TestGroupSavedPastAReplicaLeftBehind(t *testing.T) {
	t.Parallel()
	ctx, nc, js, kv := groupsBucket(t)
	var err error
	states := coordinator.NewKVStateStore(nc, kv)
	st := coordinator.GroupState{Group: "behind", State: groups.Stable, Generation: 2, ProtocolType: "consumer",
		Protocol: "range", Leader: "m1", Members: []coordinator.MemberState{{MemberID: "m1", SessionTimeout: time.Minute,
			RebalanceTimeout: time.Minute, Protocols: []groups.Protocol{{Name: "range"}}}}}
	if st.Revision, err = states.SaveGroup(ctx, st); err != nil {
		t.Fatal(err)
	}
	// The mirror holds what the bucket holds now: the group's first save, and
	// the epoch key of the node's coordinator if it started (KVStateStore.Claim).
	held := bucketMsgs(ctx, t, js, semantics.GroupsBucket)
	mirror := qxdtest.HoldBucketBehind(ctx, t, js, semantics.GroupsBucket, int64(held))
	qxdtest.WaitHeld(ctx, t, mirror, held)
	t.Logf("the mirror holds %d messages", held)
	key := semantics.GroupKey(st.Group)
	for round := range behindRounds {
		// The coordinator's last save, stored, but its acknowledgement lost.
		lost := st
		lost.Revision = 0
		b, _ := json.Marshal(lost)
		if _, err := kv.Put(ctx, key, b); err != nil {
			t.Fatal(err)
		}
		saved, err := states.SaveGroup(ctx, st)
		if err != nil {
			t.Fatalf("round %d: a save over the coordinator's own lost save: %v", round, err)
		}
		if _, rev, err := kvscan.LeaderGet(ctx, nc, semantics.GroupsBucket, key); err != nil || rev != saved {
			t.Fatalf("round %d: stored at revision %d (%v), the save said %d", round, rev, err, saved)
		}
		st.Revision = saved
	}

	newer := st
	newer.Revision, newer.Generation, newer.Leader = 0, 3, "m2"
	b, _ := json.Marshal(newer)
	if _, err := kv.Put(ctx, key, b); err != nil {
		t.Fatal(err)
	}
	if _, err := states.SaveGroup(ctx, st); !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		t.Fatalf("a save of generation 2 over another coordinator's generation 3: %v, want the revision's conflict", err)
	}
	v, _, err := kvscan.LeaderGet(ctx, nc, semantics.GroupsBucket, key)
	var stored coordinator.GroupState
	if err == nil {
		err = json.Unmarshal(v, &stored)
	}
	if err != nil || stored.Generation != 3 || stored.Leader != "m2" {
		t.Fatalf("stored after the refused save: %+v (%v), want generation 3 led by m2", stored, err)
	}
}

// bucketMsgs is how many messages bucket's stream holds.
func bucketMsgs(ctx context.Context, t *testing.T, js jetstream.JetStream, bucket string) uint64 {
	t.Helper()
	s, err := js.Stream(ctx, semantics.KVStream(bucket))
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// TestDeposedCoordinatorCannotOverwriteNewerState runs two coordinators' stores
// over one groups bucket, each with the epoch it claimed (KVStateStore.Claim): an
// old one, whose node lost the bucket without noticing yet, and the new one that
// took over. Both move a group from generation 1 to 2 with different members, the
// new one first: the old one's save must fail with ErrDeposed and leave the new
// one's state stored, also for a second save of the same generation (a sync's
// assignments). The new store must still write over its own save whose
// acknowledgement was lost, an older coordinator's save it did not load, and a
// state saved before epochs; and the coordinators' load must leave the epoch key
// out.
func TestDeposedCoordinatorCannotOverwriteNewerState(t *testing.T) {
	t.Parallel()
	// A bucket of its own: claims on the node's groups bucket depose the node's
	// own coordinator, whose restart claims again and deposes both stores.
	ctx, nc, js, _ := groupsBucket(t)
	kv := ownGroupsBucket(ctx, t, js)
	base := coordinator.NewKVStateStore(nc, kv)
	old, err := base.Claim(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	member := func(id string) coordinator.MemberState {
		return coordinator.MemberState{MemberID: id, SessionTimeout: time.Minute, RebalanceTimeout: time.Minute,
			Protocols: []groups.Protocol{{Name: "range"}}}
	}
	gen1 := coordinator.GroupState{Group: "race", State: groups.Stable, Generation: 1, ProtocolType: "consumer",
		Protocol: "range", Leader: "m1", Members: []coordinator.MemberState{member("m1")}}
	if gen1.Revision, err = old.SaveGroup(ctx, gen1); err != nil {
		t.Fatal(err)
	}
	// The new coordinator claims its epoch, then loads the group.
	nw, err := base.Claim(ctx, "n2")
	if err != nil {
		t.Fatal(err)
	}
	if nw.Epoch() <= old.Epoch() {
		t.Fatalf("epochs: the new coordinator's %d, the old one's %d; want the new one higher", nw.Epoch(), old.Epoch())
	}
	loaded, err := nw.LoadGroups(ctx)
	if err != nil || len(loaded) != 1 || loaded[0].Generation != 1 || loaded[0].Epoch != old.Epoch() {
		t.Fatalf("the new coordinator's load: %+v (%v); want the group alone, at generation 1, of epoch %d", loaded, err, old.Epoch())
	}
	stored := func() coordinator.GroupState {
		t.Helper()
		v, _, err := kvscan.LeaderGet(ctx, nc, kv.Bucket(), semantics.GroupKey("race"))
		var st coordinator.GroupState
		if err == nil {
			err = json.Unmarshal(v, &st)
		}
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	// Both move the group to generation 2, the new one with m2, the old one with m1.
	newGen2 := loaded[0]
	newGen2.Generation, newGen2.State, newGen2.Leader = 2, groups.CompletingRebalance, "m2"
	newGen2.Members = []coordinator.MemberState{member("m2")}
	if newGen2.Revision, err = nw.SaveGroup(ctx, newGen2); err != nil {
		t.Fatalf("the new coordinator's save of generation 2: %v", err)
	}
	oldGen2 := gen1
	oldGen2.Generation, oldGen2.State = 2, groups.CompletingRebalance
	if _, err := old.SaveGroup(ctx, oldGen2); !errors.Is(err, coordinator.ErrDeposed) {
		t.Fatalf("the old coordinator's save of generation 2 over the new one's: %v; want ErrDeposed", err)
	}
	if st := stored(); st.Generation != 2 || st.Leader != "m2" || len(st.Members) != 1 || st.Epoch != nw.Epoch() {
		t.Fatalf("stored after the old coordinator's save: %+v; want the new one's generation 2 (m2, epoch %d)", st, nw.Epoch())
	}
	// Within generation 2: the new one stores m2's assignment, the old one m1's.
	newGen2.State = groups.Stable
	newGen2.Members[0].Assignment = []byte("p0,p1")
	if newGen2.Revision, err = nw.SaveGroup(ctx, newGen2); err != nil {
		t.Fatalf("the new coordinator's save of generation 2's assignments: %v", err)
	}
	oldGen2.State = groups.Stable
	oldGen2.Members[0].Assignment = []byte("p0,p1")
	if _, err := old.SaveGroup(ctx, oldGen2); !errors.Is(err, coordinator.ErrDeposed) {
		t.Fatalf("the old coordinator's save of generation 2's assignments over the new one's: %v; want ErrDeposed", err)
	}
	if st := stored(); st.Leader != "m2" || st.State != groups.Stable || string(st.Members[0].Assignment) != "p0,p1" || st.Members[0].MemberID != "m2" {
		t.Fatalf("stored after the old coordinator's second save: %+v; want the new one's (m2 holding p0,p1)", st)
	}

	// Writes over what the new coordinator may write over: its own save whose
	// acknowledgement was lost, a save of the old one that it did not load, a
	// state saved before epochs.
	key := semantics.GroupKey("race")
	overs := []struct {
		name string
		put  func() error
	}{
		{"its own lost save", func() error {
			lost := newGen2
			lost.Epoch = nw.Epoch()
			b, _ := json.Marshal(lost)
			_, err := kv.Put(ctx, key, b)
			return err
		}},
		{"the old coordinator's save", func() error {
			cur := stored()
			_, rev, err := kvscan.LeaderGet(ctx, nc, kv.Bucket(), key)
			if err != nil {
				return err
			}
			cur.Revision, cur.Leader = rev, "m1"
			_, err = old.SaveGroup(ctx, cur)
			return err
		}},
		{"a state saved before epochs", func() error {
			b, _ := json.Marshal(map[string]any{"group": "race", "state": groups.Stable, "generation": 2, "leader": "m1"})
			_, err := kv.Put(ctx, key, b)
			return err
		}},
	}
	for _, o := range overs {
		if err := o.put(); err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
		saved, err := nw.SaveGroup(ctx, newGen2)
		if err != nil {
			t.Fatalf("the new coordinator's save over %s: %v", o.name, err)
		}
		if st := stored(); st.Leader != "m2" || st.Epoch != nw.Epoch() {
			t.Fatalf("stored after the new coordinator's save over %s: %+v", o.name, st)
		}
		newGen2.Revision = saved
	}

	// A group new to both: the new coordinator's create whose acknowledgement
	// was lost, then its create again, then the old one's create.
	fresh := coordinator.GroupState{Group: "fresh", State: groups.Empty, Generation: 1, ProtocolType: "consumer", Epoch: nw.Epoch()}
	b, _ := json.Marshal(fresh)
	if _, err := kv.Create(ctx, semantics.GroupKey(fresh.Group), b); err != nil {
		t.Fatal(err)
	}
	fresh.Epoch = 0
	if _, err := nw.SaveGroup(ctx, fresh); err != nil {
		t.Fatalf("the new coordinator's create over its own lost create: %v", err)
	}
	if _, err := old.SaveGroup(ctx, fresh); !errors.Is(err, coordinator.ErrDeposed) {
		t.Fatalf("the old coordinator's create over the new one's: %v; want ErrDeposed", err)
	}
}

// groupsBucket starts a node and opens its groups bucket, with a connection to
// the node and a context that ends with the test (60 s at most).
func groupsBucket(t *testing.T) (context.Context, *nats.Conn, jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	n := qxdtest.StartNode(t)
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := qxdtest.Context(t, 60*time.Second)
	kv, err := js.KeyValue(ctx, semantics.GroupsBucket)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, nc, js, kv
}

// TestDeleteGroupAtItsRevision: a group's state is purged only at the revision
// the deleting coordinator saved or loaded last. A state saved again since
// (by the same epoch: ErrStateChanged; through a newer claim that the claim
// check did not stop, as for a store that claimed none: ErrDeposed) is kept;
// a delete with no revision purges nothing; one at the current revision
// purges.
func TestDeleteGroupAtItsRevision(t *testing.T) {
	t.Parallel()
	ctx, nc, js, _ := groupsBucket(t)
	kv := ownGroupsBucket(ctx, t, js)
	base := coordinator.NewKVStateStore(nc, kv)
	a, err := base.Claim(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	st := coordinator.GroupState{Group: "del", State: groups.Empty, Generation: 1}
	rev1, err := a.SaveGroup(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	st.Revision, st.Generation = rev1, 2
	rev2, err := a.SaveGroup(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	epochStored := func(want uint64) {
		t.Helper()
		v, _, err := kvscan.LeaderGet(ctx, nc, kv.Bucket(), semantics.GroupKey("del"))
		var got coordinator.GroupState
		if err == nil {
			err = json.Unmarshal(v, &got)
		}
		if err != nil || got.Epoch != want {
			t.Fatalf("stored state: %+v (%v); want one of epoch %d", got, err, want)
		}
	}
	if err := a.DeleteGroup(ctx, "del", rev1); !errors.Is(err, coordinator.ErrStateChanged) {
		t.Fatalf("delete at revision %d, saved again at %d since: %v; want ErrStateChanged", rev1, rev2, err)
	}
	epochStored(a.Epoch())
	if err := a.DeleteGroup(ctx, "del", 0); err != nil {
		t.Fatalf("delete with no revision: %v", err)
	}
	epochStored(a.Epoch())
	if err := base.DeleteGroup(ctx, "del", rev1); !errors.Is(err, coordinator.ErrDeposed) {
		t.Fatalf("delete by a store of no epoch, at revision %d, over the state of epoch %d saved at %d: %v; want ErrDeposed", rev1, a.Epoch(), rev2, err)
	}
	epochStored(a.Epoch())
	if err := a.DeleteGroup(ctx, "del", rev2); err != nil {
		t.Fatalf("delete at the current revision: %v", err)
	}
	if _, _, err := kvscan.LeaderGet(ctx, nc, kv.Bucket(), semantics.GroupKey("del")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the state after the delete: %v; want none", err)
	}
}

// ownGroupsBucket creates a groups bucket of the test's own beside the node's:
// the node's coordinator watches qxd_groups and, deposed by a test's claim,
// claims an epoch again, which would depose the test's coordinators in turn.
func ownGroupsBucket(ctx context.Context, t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "test_groups", History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}
