package server_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestWokenNodeLeadsNothing pauses (SIGSTOP) a node for longer than any
// election timeout while healthy nodes lead quiet three-replica buckets (as
// the groups, topics and transactions buckets are while nothing changes), and
// wakes it. Its timers fired at the wake, at a term above the leaders', and a
// leader that hears it steps down; the woken node's log is as long as theirs,
// so without the wake hold it wins their elections and a bucket such as the
// groups bucket, with the group coordinator, moves to a node just back. From a
// second after the wake on, for wakeHoldFor, it must lead none of them, and
// each must have a leader on a healthy node.
func TestWokenNodeLeadsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 3*time.Minute)
	nodes, child, victim := clusterWithChild(t, ctx)
	js := qxdtest.JetStream(t, nodes[0])
	const buckets = 8
	var streams []string
	for i := range buckets {
		b := fmt.Sprintf("quiet%d", i)
		// Right after the cluster formed, JetStream's meta leader may not have
		// heard from the child node yet and count it offline ("no suitable
		// peers for placement, peer offline", err_code 10005): ask again.
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b, Replicas: 3})
		for tries := 1; err != nil && strings.Contains(err.Error(), "err_code=10005") && tries < 60; tries++ {
			time.Sleep(500 * time.Millisecond)
			kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b, Replicas: 3})
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.PutString(ctx, "k", "v"); err != nil {
			t.Fatal(err)
		}
		stream := semantics.KVStream(b)
		leader := nodes[i%2].Name()
		qxdtest.LeadStream(ctx, t, js.Conn(), stream, leader)
		waitReplicasCurrent(ctx, t, js, stream, leader)
		streams = append(streams, stream)
	}

	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Signal(syscall.SIGCONT) }()
	qxdtest.WaitStopped(ctx, t, child.Process.Pid)
	time.Sleep(11 * time.Second) // past nats-server's longest election timeout, 9 s
	if err := child.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	woke := time.Now()

	time.Sleep(time.Second)
	led := map[string]time.Duration{}
	for time.Since(woke) < 5*time.Second {
		for _, stream := range streams {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			s, err := js.Stream(sctx, stream)
			cancel()
			if err != nil {
				continue // no leader for a moment
			}
			if cl := s.CachedInfo().Cluster; cl != nil && cl.Leader == victim {
				if _, ok := led[stream]; !ok {
					led[stream] = time.Since(woke).Round(time.Millisecond)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(led) > 0 {
		t.Fatalf("the node %s, woken from a pause of 11s, led %d of %d quiet buckets healthy nodes had led (first seen after the wake: %v)",
			victim, len(led), buckets, led)
	}
	// And the hold left no bucket without a leader: each is led by a
	// healthy node.
	for _, stream := range streams {
		if l := streamLeader(nodes, stream); l == "" {
			t.Errorf("%s has no leader on a healthy node 5s after %s woke", stream, victim)
		}
	}
}
