//go:build chaos

package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// splitAtCutTries is how many cuts splitAtCut installs at most to find the
// buckets split at one.
const splitAtCutTries = 3

// splitAtCut is the pair cut of QXD_DRILL_BUCKETS=split-at-cut: it moves the
// groups bucket's leadership to n1 and the offsets and partition-checkpoint
// buckets' to n2, cuts n1 and n2 apart as soon as all three are led there, and
// looks through n3 where they are led right after the cut and a second later.
// n1's follow loop asks for the offsets bucket back within about a second of
// finding it apart (server/leaders_follow.go); once the cut is in it cannot
// reach n2 to ask, but a request that went out before may still win. When a
// look finds the buckets not split, the cut is healed at once (no node counts a
// cut that short: 2 s) and installed again, up to splitAtCutTries times. It
// returns when the standing cut began, the buckets' leaders as the last look
// found them, and whether that look found them split.
func splitAtCut(ctx context.Context, t *testing.T, lab *netnsLab, cl *procCluster) (time.Time, map[string]string, bool) {
	t.Helper()
	nc, err := nats.Connect(cl.nodes[2].url())
	if err != nil {
		t.Fatalf("split the buckets at the cut: connect to %s: %v", cl.nodes[2].name, err)
	}
	defer nc.Close()
	want := map[string]string{
		semantics.GroupsBucket:     cl.nodes[0].name,
		semantics.OffsetsBucket:    cl.nodes[1].name,
		semantics.PartitionsBucket: cl.nodes[1].name,
	}
	var cutAt time.Time
	var found map[string]string
	for try := 1; ; try++ {
		moved, err := leadNow(ctx, nc, want)
		if err != nil {
			t.Fatalf("split the buckets at the cut: %v", err)
		}
		if err := lab.cutPair(0, 1); err != nil {
			t.Fatal(err)
		}
		cutAt = time.Now()
		found = leadersNow(ctx, nc)
		split, when := splitAs(found, want), "right after the cut"
		if split {
			time.Sleep(time.Second - time.Since(cutAt))
			found = leadersNow(ctx, nc)
			split, when = splitAs(found, want), "1 s into the cut"
		}
		t.Logf("cut %d of at most %d between n1 and n2 %v after the buckets were led as wanted (%v after asking); %s the buckets were led %v: split %v",
			try, splitAtCutTries, cutAt.Sub(moved.at).Round(time.Millisecond), moved.took.Round(time.Millisecond), when, found, split)
		if split || try == splitAtCutTries {
			return cutAt, found, split
		}
		if err := lab.healPair(0, 1); err != nil {
			t.Fatal(err)
		}
		for lab.reach(0, 1) != nil || lab.reach(1, 0) != nil {
			if ctx.Err() != nil {
				t.Fatal(ctx.Err())
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(3 * time.Second) // the routes back, and the nodes hearing each other again
	}
}

// splitAs says whether every bucket of want is led by the node named for it.
func splitAs(got, want map[string]string) bool {
	for b, node := range want {
		if got[b] != node {
			return false
		}
	}
	return true
}

// leaderMove is when leadNow found every bucket led as wanted, and how long
// after it began.
type leaderMove struct {
	at   time.Time
	took time.Duration
}

// leadNow asks each bucket's stream leader to step down in favour of the node
// named for it in want, again each second while it is led elsewhere, and
// returns as soon as every bucket is led as wanted (looking every 50 ms:
// qxdtest.LeadStream looks every 500 ms, time enough for n1's follow loop to
// take the offsets bucket back before the cut).
func leadNow(ctx context.Context, nc *nats.Conn, want map[string]string) (leaderMove, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return leaderMove{}, err
	}
	began := time.Now()
	asked := map[string]time.Time{}
	for {
		done := true
		var last string
		for b, node := range want {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			s, err := js.Stream(sctx, semantics.KVStream(b))
			cancel()
			if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader == node {
				continue
			}
			done = false
			if err != nil {
				last = fmt.Sprintf("bucket %s: %v", b, err)
			} else if s.CachedInfo().Cluster != nil {
				last = fmt.Sprintf("bucket %s led by %s", b, s.CachedInfo().Cluster.Leader)
			}
			if time.Since(asked[b]) >= time.Second {
				asked[b] = time.Now()
				req := fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, node)
				_, _ = nc.Request(semantics.Subject(semantics.JSStreamLeaderStepDownPrefix, semantics.KVStream(b)), req, 2*time.Second)
			}
		}
		if done {
			return leaderMove{at: time.Now(), took: time.Since(began)}, nil
		}
		if time.Since(began) > 30*time.Second || ctx.Err() != nil {
			return leaderMove{}, fmt.Errorf("buckets not led as %v in %v (last: %s)", want, time.Since(began).Round(time.Millisecond), last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leadersNow is bucketLeaders over an open connection: each bucket's stream
// leader as its stream info says now (a bucket whose info does not come is
// left out).
func leadersNow(ctx context.Context, nc *nats.Conn) map[string]string {
	out := map[string]string{}
	js, err := jetstream.New(nc)
	if err != nil {
		return out
	}
	for _, b := range []string{semantics.GroupsBucket, semantics.OffsetsBucket, semantics.PartitionsBucket, semantics.TxnsBucket, semantics.TopicsBucket} {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := js.Stream(sctx, semantics.KVStream(b))
		cancel()
		if err == nil && s.CachedInfo().Cluster != nil {
			out[b] = s.CachedInfo().Cluster.Leader
		}
	}
	return out
}
