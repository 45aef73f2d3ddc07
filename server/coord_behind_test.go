package server_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/groups/coordinator"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// lagRounds is how many coordinators a test starts over a bucket one of whose
// three replicas is held behind. A coordinator that loads through a KV watcher
// reads from the replica JetStream places the watcher's consumer on, the held
// one with probability 1/3: 40 starts all miss it with probability (2/3)^40,
// about 10^-7.
const lagRounds = 40

// TestCoordinatorsLoadFromTheBucketLeader starts group and transaction
// coordinators, one after another, over the groups bucket and a transactions
// bucket of a 3-node cluster, while a follower of each bucket's stream is held
// behind (it stores and acknowledges the bucket's RAFT entries but does not
// apply them, Node.HoldReplicaBehind) and a member of each bucket's direct-get
// queue group holds only the first record (qxdtest.HoldBucketBehind). Every
// coordinator must start from what the leader holds: the group at generation 3
// with the member that generation kept (not generation 1 with the member it
// fenced, whose heartbeat must be refused), the transaction committed (not
// open). Loaded through the buckets'
// watchers (kvscan.Scan), about a third of the starts read the held replica.
func TestCoordinatorsLoadFromTheBucketLeader(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	js := qxdtest.JetStream(t, nodes[0])
	ctx := qxdtest.Context(t, 3*time.Minute)

	t.Run("groups", func(t *testing.T) {
		kv, err := js.KeyValue(ctx, semantics.GroupsBucket)
		if err != nil {
			t.Fatal(err)
		}
		offs, err := offsets.Open(ctx, js, 3)
		if err != nil {
			t.Fatal(err)
		}
		states := coordinator.NewKVStateStore(js.Conn(), kv)
		member := func(id string) coordinator.MemberState {
			return coordinator.MemberState{MemberID: id, SessionTimeout: time.Minute, RebalanceTimeout: time.Minute,
				Protocols: []groups.Protocol{{Name: "range"}}}
		}
		st := coordinator.GroupState{Group: "lagging", State: groups.Stable, Generation: 1, ProtocolType: "consumer",
			Protocol: "range", Leader: "m1", Members: []coordinator.MemberState{member("m1")}}
		save := func() {
			t.Helper()
			rev, err := states.SaveGroup(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			st.Revision = rev
		}
		save()
		holdBehind(ctx, t, js, nodes, semantics.GroupsBucket)
		st.Generation, st.Members = 2, []coordinator.MemberState{member("m1"), member("m2")}
		save()
		st.Generation, st.Leader, st.Members = 3, "m2", []coordinator.MemberState{member("m2")}
		save()
		cfg := coordinator.DefaultConfig()
		for round := range lagRounds {
			c, err := coordinator.New(cfg, states, offs)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Load(ctx)
			var d groups.GroupDescription
			var fenced error
			if err == nil {
				d, err = c.DescribeGroup(ctx, "lagging")
				fenced = c.Heartbeat(ctx, groups.HeartbeatRequest{Group: "lagging", MemberID: "m1", Generation: 1})
			}
			c.Close()
			var ids []string
			for _, m := range d.Members {
				ids = append(ids, m.MemberID)
			}
			if err != nil || d.Generation != 3 || !slices.Equal(ids, []string{"m2"}) {
				t.Fatalf("round %d: the coordinator started with generation %d, members %v (%v); want generation 3, members [m2]",
					round, d.Generation, ids, err)
			}
			if !errors.Is(fenced, semantics.ErrUnknownMemberID) {
				t.Fatalf("round %d: heartbeat of member m1 of generation 1, fenced in generation 3: %v, want UNKNOWN_MEMBER_ID", round, fenced)
			}
		}
	})

	t.Run("transactions", func(t *testing.T) {
		const bucket = "txns_lagging"
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 1, Replicas: 3})
		if err != nil {
			t.Fatal(err)
		}
		put := func(state semantics.TxnState, parts string) {
			t.Helper()
			now := time.Now().UnixMilli()
			rec := fmt.Sprintf(`{"id":"t","producer_id":4000,"epoch":2,"timeout_ms":600000,"state":%q,"partitions":%s,"started":%d,"updated":%d}`,
				state, parts, now, now)
			if _, err := kv.Put(ctx, semantics.TxnKey("t"), []byte(rec)); err != nil {
				t.Fatal(err)
			}
		}
		put(semantics.TxnOngoing, `[{"topic":"orders","partition":0}]`)
		holdBehind(ctx, t, js, nodes, bucket)
		put(semantics.TxnCompleteCommit, `[]`)
		for round := range lagRounds {
			c := server.NewTxnCoordinator(js.Conn(), kv)
			err := c.Load(ctx)
			var d semantics.TxnDescription
			if err == nil {
				d, err = c.Describe("t")
			}
			c.Close()
			if err != nil || d.State != semantics.TxnCompleteCommit {
				t.Fatalf("round %d: the coordinator started with transaction t %s (%v); want it %s",
					round, d.State, err, semantics.TxnCompleteCommit)
			}
		}
	})
}

// holdBehind holds bucket's state as it is now on two readers that are not its
// leader: a follower of its stream, once every replica is current
// (Node.HoldReplicaBehind), and a member of its direct-get queue group
// (qxdtest.HoldBucketBehind, holding the stream's messages: the groups bucket
// holds the coordinator's epoch key beside the group). Both are released when
// the test ends.
func holdBehind(ctx context.Context, t *testing.T, js jetstream.JetStream, nodes []*server.Node, bucket string) {
	t.Helper()
	stream := semantics.KVStream(bucket)
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	held := s.CachedInfo().State.Msgs
	mirror := qxdtest.HoldBucketBehind(ctx, t, js, bucket, int64(held))
	qxdtest.WaitHeld(ctx, t, mirror, held)
	for {
		s, err := js.Stream(ctx, stream)
		if err == nil {
			info := s.CachedInfo()
			if cl := info.Cluster; cl != nil && cl.Leader != "" && len(cl.Replicas) == 2 &&
				cl.Replicas[0].Current && cl.Replicas[1].Current && cl.Replicas[0].Lag == 0 {
				for _, n := range nodes {
					if n.Name() == cl.Replicas[0].Name {
						release, err := n.HoldReplicaBehind(ctx, stream)
						if err != nil {
							t.Fatal(err)
						}
						t.Cleanup(release)
						return
					}
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("bucket %s: no follower current with its leader: %v", bucket, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
