package coordinator_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/groups/coordinator"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestGroupSaveOverOwnPastAReplicaLeftBehind saves a group's state at a revision
// one behind the stored one, as a coordinator does after its previous save's
// acknowledgement was lost, while a member of the bucket's direct-get queue group
// holds only the group's first state (as a replica cut from the bucket's leader
// answers with what it held at the cut: a mirror of the bucket's stream that
// refuses messages past its first, which JetStream puts into the stream's queue
// group). The stored state is of the same generation, so each save must write
// over it; read from that replica, the stored revision was its old one and
// about half the saves failed as a conflict.
func TestGroupSaveOverOwnPastAReplicaLeftBehind(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := qxdtest.Context(t, 60*time.Second)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "groups_behind", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	mirror, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "groups_behind_replica", Mirror: &jetstream.StreamSource{Name: semantics.KVStream("groups_behind")},
		MaxMsgs: 1, Discard: jetstream.DiscardNew, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := coordinator.NewKVStateStore(nc, kv)
	st := coordinator.GroupState{Group: "g", State: groups.Stable, Generation: 3}
	rev, err := s.SaveGroup(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		info, err := mirror.Info(wctx)
		if err == nil && info.State.Msgs == 1 {
			break
		}
		if wctx.Err() != nil {
			t.Fatalf("the mirror did not take the group's first state: %+v, %v", info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st.Revision = rev
	behind := rev
	if rev, err = s.SaveGroup(ctx, st); err != nil {
		t.Fatal(err)
	}
	// Each direct get reaches the mirror with probability 1/2: 40 saves all
	// miss it with probability 2^-40.
	for round := range 40 {
		st.Revision = behind // the previous save's acknowledgement was lost
		got, err := s.SaveGroup(ctx, st)
		if err != nil {
			t.Fatalf("round %d: save of generation %d at revision %d, the stored %d of the same generation: %v", round, st.Generation, behind, rev, err)
		}
		behind, rev = rev, got
	}
}
