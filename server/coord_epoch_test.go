package server_test

import (
	"encoding/json"
	"testing"
	"time"

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
