package server_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/groups/coordinator"
	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestCoordinatorTakeoverSavesWithANewerEpoch moves the groups bucket's
// leadership, and with it the group coordinator, from one node of three to
// another, and checks that each coordinator run saves with the epoch it claimed
// when it started (the revision of its put of semantics.CoordinatorEpochKey),
// the later one higher: what the fence of a deposed coordinator's saves
// (coordinator.ErrDeposed) rests on.
func TestCoordinatorTakeoverSavesWithANewerEpoch(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 2*time.Minute)
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].AutoLeaderRebalance = false
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	nc := qxdtest.Connect(t, nodes[2]).Conn()
	waitReplicas(ctx, t, nc)
	stream := semantics.KVStream(semantics.GroupsBucket)
	const group = "epochs"
	stored := func(when string) (coordinator.GroupState, uint64) {
		t.Helper()
		v, _, err := kvscan.LeaderGet(ctx, nc, semantics.GroupsBucket, semantics.GroupKey(group))
		var st coordinator.GroupState
		if err == nil {
			err = json.Unmarshal(v, &st)
		}
		if err != nil {
			t.Fatalf("%s: the group's state: %v", when, err)
		}
		_, epoch, err := kvscan.LeaderGet(ctx, nc, semantics.GroupsBucket, semantics.CoordinatorEpochKey)
		if err != nil {
			t.Fatalf("%s: the coordinator epoch key: %v", when, err)
		}
		return st, epoch
	}

	qxdtest.LeadStream(ctx, t, nc, stream, nodes[0].Name())
	first := nodes[0].Groups()
	waitCoordinating(ctx, t, first)
	join, err := first.Join(ctx, groups.JoinRequest{Group: group, SessionTimeout: 10 * time.Second,
		ProtocolType: "consumer", Protocols: []groups.Protocol{{Name: "range", Metadata: []byte("{}")}}})
	if err != nil {
		t.Fatal(err)
	}
	st1, epoch1 := stored("on the first coordinator")
	if st1.Epoch == 0 || st1.Epoch != epoch1 {
		t.Fatalf("saved by the first coordinator with epoch %d; it claimed %d", st1.Epoch, epoch1)
	}

	qxdtest.LeadStream(ctx, t, nc, stream, nodes[1].Name())
	second := nodes[1].Groups()
	waitCoordinating(ctx, t, second)
	for {
		err := second.Leave(ctx, groups.LeaveRequest{Group: group, MemberID: join.MemberID})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("leave on the second coordinator: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the group loads as the coordinator starts
	}
	st2, epoch2 := stored("on the second coordinator")
	if st2.Epoch != epoch2 || epoch2 <= epoch1 || st2.Generation <= st1.Generation {
		t.Fatalf("saved by the second coordinator at generation %d with epoch %d (it claimed %d); the first saved generation %d with epoch %d: want a newer generation and a higher epoch",
			st2.Generation, st2.Epoch, epoch2, st1.Generation, st1.Epoch)
	}
	t.Logf("epochs: %d, then %d after the takeover", epoch1, epoch2)
}

// TestDeposedCoordinatorRunRestarts stores a coordinator claim newer than the
// running coordinator's, as a node that took the groups bucket over does
// (KVStateStore.Claim), while this node still leads the bucket. The run must stop
// answering at once (a heartbeat gets NOT_COORDINATOR, not a renewed lease) and
// the node, leading still, start another run with a claim of its own newer than
// that one, under which the member carries on.
func TestDeposedCoordinatorRunRestarts(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	nc := qxdtest.Connect(t, n).Conn()
	ctx := qxdtest.Context(t, 60*time.Second)
	g := n.Groups()
	waitCoordinating(ctx, t, g)
	join, err := g.Join(ctx, groups.JoinRequest{Group: "deposed-run", SessionTimeout: 30 * time.Second,
		ProtocolType: "consumer", Protocols: []groups.Protocol{{Name: "range", Metadata: []byte("{}")}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Sync(ctx, groups.SyncRequest{Group: "deposed-run", MemberID: join.MemberID, Generation: join.Generation,
		Assignments: map[string][]byte{join.MemberID: []byte("all")}}); err != nil {
		t.Fatal(err)
	}
	hb := groups.HeartbeatRequest{Group: "deposed-run", MemberID: join.MemberID, Generation: join.Generation}
	if err := g.Heartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, semantics.GroupsBucket)
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	newer, err := kv.Put(ctx, semantics.CoordinatorEpochKey, []byte(`{"node":"another"}`))
	if err != nil {
		t.Fatal(err)
	}
	var refused time.Duration
	bound := time.Now().Add(5 * time.Second)
	for refused == 0 {
		err := g.Heartbeat(ctx, hb)
		switch {
		case errors.Is(err, semantics.ErrNotCoordinator):
			refused = time.Since(sent)
		case err != nil:
			t.Fatalf("heartbeat after the newer claim: %v; want nil, then NOT_COORDINATOR", err)
		case time.Now().After(bound):
			t.Fatal("the deposed coordinator still renews the member's lease 5 s after a newer claim")
		}
		time.Sleep(time.Millisecond)
	}
	for {
		err := g.Heartbeat(ctx, hb)
		if err == nil {
			break
		}
		if !errors.Is(err, semantics.ErrNotCoordinator) || ctx.Err() != nil {
			t.Fatalf("heartbeat while the coordinator starts again: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	back := time.Since(sent)
	_, epoch, err := kvscan.LeaderGet(ctx, nc, semantics.GroupsBucket, semantics.CoordinatorEpochKey)
	if err != nil {
		t.Fatal(err)
	}
	if epoch <= newer {
		t.Fatalf("the coordinator serves again under claim %d; the newer claim stored was %d", epoch, newer)
	}
	t.Logf("first NOT_COORDINATOR %v after the newer claim was sent; the member's heartbeat answered again %v after, under claim %d (the newer one: %d)",
		refused.Round(100*time.Microsecond), back.Round(time.Millisecond), epoch, newer)
}

// TestClaimKeyIsNoGroup: the groups bucket holds the coordinator's claim
// (semantics.CoordinatorEpochKey) beside the groups' states. No group surface may
// show it as a group — a build that read every key as a group took it for a
// group named "" — nor delete it: a group named "coordinator.epoch" has a key of
// its own, and "" is no group id.
func TestClaimKeyIsNoGroup(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	g := n.Groups()
	waitCoordinating(ctx, t, g)
	const named = semantics.CoordinatorEpochKey // a group named as the claim key
	join, err := g.Join(ctx, groups.JoinRequest{Group: named, SessionTimeout: 10 * time.Second,
		ProtocolType: "consumer", Protocols: []groups.Protocol{{Name: "range", Metadata: []byte("{}")}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Leave(ctx, groups.LeaveRequest{Group: named, MemberID: join.MemberID}); err != nil {
		t.Fatal(err)
	}
	list := func(when string) {
		t.Helper()
		for _, door := range []struct {
			name string
			list func() ([]string, error)
		}{
			{"in process", func() ([]string, error) {
				gs, err := g.ListGroups(ctx)
				var ids []string
				for _, s := range gs {
					ids = append(ids, s.Group)
				}
				return ids, err
			}},
			{"over NATS", func() ([]string, error) {
				gs, err := c.Admin().ListGroups(ctx)
				var ids []string
				for _, s := range gs {
					ids = append(ids, s.Group)
				}
				return ids, err
			}},
		} {
			gs, err := door.list()
			if err != nil {
				t.Fatalf("%s: list groups %s: %v", when, door.name, err)
			}
			if slices.Contains(gs, "") {
				t.Errorf("%s: list groups %s shows a group named \"\": %q", when, door.name, gs)
			}
		}
		if _, err := g.DescribeGroup(ctx, ""); !errors.Is(err, semantics.ErrInvalidGroupID) {
			t.Errorf("%s: describe group \"\": %v; want INVALID_GROUP_ID", when, err)
		}
		if err := g.DeleteGroup(ctx, ""); !errors.Is(err, semantics.ErrInvalidGroupID) {
			t.Errorf("%s: delete group \"\": %v; want INVALID_GROUP_ID", when, err)
		}
	}
	list("first run")
	// A coordinator that loads the bucket, with the group's state and the
	// claim in it, must not take the claim for a group either: a newer claim
	// makes this node start another run, which loads it.
	js, err := jetstream.New(c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, semantics.GroupsBucket)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := kv.Put(ctx, semantics.CoordinatorEpochKey, []byte(`{"node":"another"}`))
	if err != nil {
		t.Fatal(err)
	}
	var claim uint64
	for claim <= newer {
		if _, claim, err = kvscan.LeaderGet(ctx, c.Conn(), semantics.GroupsBucket, semantics.CoordinatorEpochKey); err != nil || ctx.Err() != nil {
			t.Fatalf("the claim key: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitCoordinating(ctx, t, g)
	if d, err := g.DescribeGroup(ctx, named); err != nil || d.State != groups.Empty {
		t.Fatalf("group %q on the run that loaded it: %+v, %v; want it Empty", named, d, err)
	}
	list("run that loaded the bucket")
	if err := g.DeleteGroup(ctx, named); err != nil {
		t.Fatalf("delete group %q: %v", named, err)
	}
	if _, rev, err := kvscan.LeaderGet(ctx, c.Conn(), semantics.GroupsBucket, semantics.CoordinatorEpochKey); err != nil || rev < claim {
		t.Fatalf("the claim key after deleting group %q: revision %d, %v; want it kept (%d or later)", named, rev, err, claim)
	}
	if _, err := g.DescribeGroup(ctx, named); !errors.Is(err, semantics.ErrGroupIDNotFound) {
		t.Errorf("describe group %q after its delete: %v; want GROUP_ID_NOT_FOUND", named, err)
	}
}
