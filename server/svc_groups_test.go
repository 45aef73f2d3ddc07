package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// waitCoordinating waits until the node's group service coordinates (its reconcile
// loop starts the coordinator within a moment of the node's start).
func waitCoordinating(ctx context.Context, t *testing.T, g server.GroupCoordinator) {
	t.Helper()
	for {
		_, err := g.ListGroups(ctx)
		if err == nil {
			return
		}
		if !errors.Is(err, semantics.ErrNotCoordinator) || ctx.Err() != nil {
			t.Fatalf("list groups: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGroupsServiceInProcess drives the group coordinator through Node.Groups, as a
// Kafka listener would, with no NATS request: a member joins, syncs its
// assignment, heartbeats and commits; the commit is read back, an older
// generation's commit is refused, and the member leaves.
func TestGroupsServiceInProcess(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "svc-groups", qxd.TopicConfig{Partitions: 2})
	ctx := qxdtest.Context(t, 30*time.Second)
	g := n.Groups()
	waitCoordinating(ctx, t, g)

	join, err := g.Join(ctx, groups.JoinRequest{Group: "svc-g", SessionTimeout: 10 * time.Second,
		ProtocolType: "consumer", Protocols: []groups.Protocol{{Name: "range", Metadata: []byte("{}")}}})
	if err != nil {
		t.Fatal(err)
	}
	if join.MemberID == "" || join.Leader != join.MemberID || join.Generation < 1 || len(join.Members) != 1 {
		t.Fatalf("join: %+v, want this member leading generation 1 or later", join)
	}
	sync, err := g.Sync(ctx, groups.SyncRequest{Group: "svc-g", MemberID: join.MemberID, Generation: join.Generation,
		Assignments: map[string][]byte{join.MemberID: []byte("both partitions")}})
	if err != nil || string(sync.Assignment) != "both partitions" {
		t.Fatalf("sync: %q, %v", sync.Assignment, err)
	}
	if err := g.Heartbeat(ctx, groups.HeartbeatRequest{Group: "svc-g", MemberID: join.MemberID, Generation: join.Generation}); err != nil {
		t.Fatal(err)
	}
	commit := groups.CommitRequest{Group: "svc-g", MemberID: join.MemberID, Generation: join.Generation,
		Offsets: []semantics.OffsetEntry{{Topic: "svc-groups", Partition: 1, Offset: 42, Metadata: "m"}}}
	if err := g.CommitOffsets(ctx, commit); err != nil {
		t.Fatal(err)
	}
	stale := commit
	stale.Generation--
	stale.Offsets = []semantics.OffsetEntry{{Topic: "svc-groups", Partition: 1, Offset: 7}}
	if err := g.CommitOffsets(ctx, stale); !errors.Is(err, semantics.ErrIllegalGeneration) {
		t.Fatalf("commit of generation %d: %v, want %v", stale.Generation, err, semantics.ErrIllegalGeneration)
	}
	got, err := g.FetchOffsets(ctx, groups.FetchRequest{Group: "svc-g"})
	if err != nil || len(got) != 1 || got[0].Offset != 42 || got[0].Partition != 1 || got[0].Metadata != "m" {
		t.Fatalf("fetch offsets: %+v, %v; want svc-groups/1 at 42", got, err)
	}
	d, err := g.DescribeGroup(ctx, "svc-g")
	if err != nil || d.State != groups.Stable || len(d.Members) != 1 {
		t.Fatalf("describe: %+v, %v; want one member, stable", d, err)
	}
	if err := g.Leave(ctx, groups.LeaveRequest{Group: "svc-g", MemberID: join.MemberID}); err != nil {
		t.Fatal(err)
	}
	if err := g.DeleteGroup(ctx, "svc-g"); err != nil {
		t.Fatal(err)
	}
	if list, err := g.ListGroups(ctx); err != nil || len(list) != 0 {
		t.Fatalf("groups after the delete: %+v, %v", list, err)
	}
}
