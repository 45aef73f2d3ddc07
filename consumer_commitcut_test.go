package qxd_test

import (
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestMemberHeartbeatsWhileCommitsHang cuts off the node leading the offsets
// bucket (every route of node 2 through a relay, then the relays frozen) while the
// group's coordinator runs on node 1, which leads the groups bucket: the
// coordinator answers heartbeats, but a commit waits until the offsets bucket has
// a leader node 1 reaches again (an election, seconds). Automatic leader
// placement, which keeps the two buckets led from one node, is off, so that they
// stay apart as an election can leave them for a moment. The member's
// auto-commit must not hold its heartbeats up meanwhile: were they held past the
// lease (the session timeout less a tenth), Poll would drop the member's
// partitions and the member would rejoin in a new generation, reading nothing
// in between.
func TestMemberHeartbeatsWhileCommitsHang(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 120*time.Second)
	// The offsets bucket stays where it is put, led apart from the groups bucket
	// (automatic leader placement would bring it back to node 1).
	nodes, relays, _ := relayedCluster(ctx, t, func(c *server.Config) { c.AutoLeaderRebalance = false })
	c := connectTo(ctx, t, nodes[0].ClientURL(), nodes[0], qxd.ClientRequestTimeout(5*time.Second))
	qxdtest.LeadStream(ctx, t, c.Conn(), semantics.KVStream(semantics.GroupsBucket), nodes[0].Name())
	qxdtest.LeadStream(ctx, t, c.Conn(), semantics.KVStream(semantics.OffsetsBucket), nodes[1].Name())
	const topic = "commit-hang"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	// The partition is led by node 1, so that records keep coming through the cut.
	qxdtest.LeadStream(ctx, t, c.Conn(), semantics.StreamName(topic, 0), nodes[0].Name())

	produceTrickle(ctx, t, qxdtest.NewProducer(t, c, qxd.Linger(0)), topic)

	cons := qxdtest.NewConsumer(t, c, qxd.Group("commit-hang"), qxd.SessionTimeout(3*time.Second),
		qxd.AutoCommit(200*time.Millisecond))
	if err := cons.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reads []time.Time
	pollUntilEnd(ctx, t, cons, func([]qxd.Record) {
		mu.Lock()
		reads = append(reads, time.Now())
		mu.Unlock()
	})
	readSince := func(from time.Time) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reads) > 0 && !reads[len(reads)-1].Before(from)
	}
	// Reading, and committing, before the cut.
	for began := time.Now(); !readSince(began.Add(time.Second)); {
		if ctx.Err() != nil {
			t.Fatal("the member read nothing before the cut")
		}
		time.Sleep(50 * time.Millisecond)
	}
	gen, member := cons.Generation()

	for _, r := range relays {
		r.freeze()
	}
	cut := time.Now()
	const watch = 15 * time.Second
	for time.Since(cut) < watch {
		if g, m := cons.Generation(); g != gen || m != member {
			mu.Lock()
			gap := longestGap(reads, cut)
			mu.Unlock()
			t.Fatalf("%v after the cut the member is %q in generation %d, was %q in %d: it lost its partitions though its coordinator answered (longest read gap since the cut %v)",
				time.Since(cut).Round(time.Millisecond), m, g, member, gen, gap)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !readSince(time.Now().Add(-3 * time.Second)) {
		t.Fatalf("the member read nothing in the last 3 s of %v after the cut", watch)
	}
	mu.Lock()
	t.Logf("longest read gap in the %v after the cut: %v", watch, longestGap(reads, cut))
	mu.Unlock()
}

// longestGap is the longest time between reads (and from from to the first) at or
// after from.
func longestGap(reads []time.Time, from time.Time) time.Duration {
	var gap time.Duration
	last := from
	for _, at := range reads {
		if at.Before(from) {
			continue
		}
		gap = max(gap, at.Sub(last))
		last = at
	}
	return max(gap, time.Since(last))
}
