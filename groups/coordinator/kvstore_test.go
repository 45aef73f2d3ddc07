package coordinator_test

import (
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
	states := coordinator.NewKVStateStore(nc, kv)
	st := coordinator.GroupState{Group: "behind", State: groups.Stable, Generation: 2, ProtocolType: "consumer",
		Protocol: "range", Leader: "m1", Members: []coordinator.MemberState{{MemberID: "m1", SessionTimeout: time.Minute,
			RebalanceTimeout: time.Minute, Protocols: []groups.Protocol{{Name: "range"}}}}}
	if st.Revision, err = states.SaveGroup(ctx, st); err != nil {
		t.Fatal(err)
	}
	mirror := qxdtest.HoldBucketBehind(ctx, t, js, semantics.GroupsBucket, 1)
	qxdtest.WaitHeld(ctx, t, mirror, 1)
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
