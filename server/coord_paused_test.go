package server_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/groups/coordinator"
	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// pausedLoads is how many coordinator loads TestCoordinatorLoadPastAPausedReplica
// times. JetStream places each load's watcher on one of the groups bucket's three
// replicas, the paused one with probability 1/3: 12 loads all miss it with
// probability (2/3)^12, about 0.8%.
const pausedLoads = 12

// TestCoordinatorLoadPastAPausedReplica pauses (SIGSTOP) a node holding a
// replica of the groups bucket, led by a healthy node, and loads the group
// states one load after another, as a coordinator taking over does
// (KVStateStore.LoadGroups, a kvscan.LeaderScan). A load whose watcher's
// consumer lands on the paused replica hears nothing; it must still end, with
// every group as the leader holds it, within about a second (the scan walks
// the leader's stream once its watcher is quiet), not after the 5 s it waited
// for its watcher alone.
func TestCoordinatorLoadPastAPausedReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 2*time.Minute)
	nodes, child, victim := clusterWithChild(t, ctx)
	js := qxdtest.JetStream(t, nodes[0])
	kv, err := js.KeyValue(ctx, semantics.GroupsBucket)
	if err != nil {
		t.Fatal(err)
	}
	states := coordinator.NewKVStateStore(js.Conn(), kv)
	const stored = 20
	for i := range stored {
		st := coordinator.GroupState{Group: fmt.Sprintf("g%d", i), State: groups.Empty, Generation: 1, ProtocolType: "consumer"}
		if _, err := states.SaveGroup(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	stream := semantics.KVStream(semantics.GroupsBucket)
	qxdtest.LeadStream(ctx, t, js.Conn(), stream, nodes[1].Name())
	// Every replica current, so that the meta leader places watchers on each.
	waitReplicasCurrent(ctx, t, js, stream, nodes[1].Name())

	const bound = 2500 * time.Millisecond
	paused := time.Now()
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Signal(syscall.SIGCONT) }()
	qxdtest.WaitStopped(ctx, t, child.Process.Pid)
	var took []time.Duration
	for i := range pausedLoads {
		start := time.Now()
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		got, err := states.LoadGroups(lctx)
		cancel()
		d := time.Since(start)
		took = append(took, d.Round(time.Millisecond))
		if err != nil || len(got) != stored {
			t.Fatalf("load %d, %v after the pause of %s: %d groups (%v) after %v; want %d",
				i, start.Sub(paused).Round(time.Millisecond), victim, len(got), err, d.Round(time.Millisecond), stored)
		}
		if d > bound {
			t.Fatalf("load %d, %v after the pause of %s, took %v (bound %v); loads: %v",
				i, start.Sub(paused).Round(time.Millisecond), victim, d.Round(time.Millisecond), bound, took)
		}
	}
	t.Logf("loads after the pause of %s: %v", victim, took)
}

// TestLeaderGetPastAPausedLeader pauses (SIGSTOP) the node leading a
// three-replica bucket and at once reads a key from the bucket's leader
// through a healthy node (kvscan.LeaderGet, as the offsets store reads a
// committed offset), with a 20 s context. Nobody answers until the two healthy
// nodes elect a leader, and a leader elected after a request was sent never
// sees it: the read must send its request again and be answered by the new
// leader within a few seconds of the pause, not wait out its context.
func TestLeaderGetPastAPausedLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 2*time.Minute)
	nodes, child, victim := clusterWithChild(t, ctx)
	js := qxdtest.JetStream(t, nodes[0])
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "pget", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.PutString(ctx, "k", "v")
	if err != nil {
		t.Fatal(err)
	}
	stream := semantics.KVStream("pget")
	qxdtest.LeadStream(ctx, t, js.Conn(), stream, victim)
	waitReplicasCurrent(ctx, t, js, stream, victim)

	const bound = 12 * time.Second
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Signal(syscall.SIGCONT) }()
	qxdtest.WaitStopped(ctx, t, child.Process.Pid)
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	v, got, err := kvscan.LeaderGet(rctx, js.Conn(), "pget", "k")
	cancel()
	d := time.Since(start)
	if err != nil || string(v) != "v" || got != rev || d > bound {
		t.Fatalf("leader read of a bucket whose leader %s is paused: %q at revision %d (%v) after %v; want \"v\" at %d within %v",
			victim, v, got, err, d.Round(time.Millisecond), rev, bound)
	}
	t.Logf("leader read of a bucket whose leader %s is paused: answered after %v", victim, d.Round(time.Millisecond))
}

// waitReplicasCurrent waits until leader leads stream and both its other
// replicas are current with it.
func waitReplicasCurrent(ctx context.Context, t *testing.T, js jetstream.JetStream, stream, leader string) {
	t.Helper()
	for {
		s, err := js.Stream(ctx, stream)
		if err == nil {
			if cl := s.CachedInfo().Cluster; cl != nil && cl.Leader == leader && len(cl.Replicas) == 2 &&
				cl.Replicas[0].Current && cl.Replicas[1].Current && cl.Replicas[0].Lag == 0 && cl.Replicas[1].Lag == 0 {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("stream %s: its replicas never all caught up with its leader %s: %v", stream, leader, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leadCoordinatorBuckets moves the leadership of the groups and offsets buckets
// (the group coordinator and its commits) to node, and waits until their
// replicas are current with it.
func leadCoordinatorBuckets(ctx context.Context, t *testing.T, js jetstream.JetStream, node string) {
	t.Helper()
	for _, b := range []string{semantics.GroupsBucket, semantics.OffsetsBucket} {
		qxdtest.LeadStream(ctx, t, js.Conn(), semantics.KVStream(b), node)
		waitReplicasCurrent(ctx, t, js, semantics.KVStream(b), node)
	}
}
