package kvscan_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestLeaderScan reads a bucket that keeps history on a real node from its
// leader, with LeaderScan and with the walk of the leader's stream it falls
// back to: the latest value and revision of every live key matching the
// filter, in revision order, once; keys deleted or purged left out, one written
// again after its purge kept; an error from each ends the scan with it; a
// bucket that no longer exists is an error at once.
func TestLeaderScan(t *testing.T) {
	n := qxdtest.StartNode(t)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "lscan", History: 5})
	if err != nil {
		t.Fatal(err)
	}
	rev := map[string]uint64{}
	for _, kvp := range [][2]string{{"a.1", "old"}, {"a.2", "x"}, {"b.1", "y"}, {"a.3", "gone"}, {"a.4", "purged"},
		{"a.5", "purged"}, {"a.1", "new"}} {
		r, err := kv.PutString(ctx, kvp[0], kvp[1])
		if err != nil {
			t.Fatal(err)
		}
		rev[kvp[0]] = r
	}
	if err := kv.Delete(ctx, "a.3"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a.4", "a.5"} {
		if err := kv.Purge(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if rev["a.5"], err = kv.PutString(ctx, "a.5", "again"); err != nil {
		t.Fatal(err)
	}

	scan := func(filter string) []kvscan.Entry {
		t.Helper()
		var got []kvscan.Entry
		if err := kvscan.LeaderScan(ctx, js.Conn(), kv, filter, func(e kvscan.Entry) error {
			got = append(got, e)
			return nil
		}); err != nil {
			t.Fatalf("scan of %s: %v", filter, err)
		}
		return got
	}
	walk := func(filter string) []kvscan.Entry {
		t.Helper()
		got, err := kvscan.LeaderWalk(ctx, js.Conn(), "lscan", filter)
		if err != nil {
			t.Fatalf("walk of %s: %v", filter, err)
		}
		return got
	}
	want := func(keys ...string) []kvscan.Entry {
		vals := map[string]string{"a.1": "new", "a.2": "x", "b.1": "y", "a.5": "again"}
		var out []kvscan.Entry
		for _, k := range keys {
			out = append(out, kvscan.Entry{Key: k, Value: []byte(vals[k]), Revision: rev[k]})
		}
		return out
	}
	eq := func(a, b kvscan.Entry) bool {
		return a.Key == b.Key && string(a.Value) == string(b.Value) && a.Revision == b.Revision
	}
	for name, read := range map[string]func(string) []kvscan.Entry{"scan": scan, "walk": walk} {
		if got, w := read("a.>"), want("a.2", "a.1", "a.5"); !slices.EqualFunc(got, w, eq) {
			t.Errorf("%s of a.>: %v, want %v", name, got, w)
		}
		if got, w := read(jetstream.AllKeys), want("a.2", "b.1", "a.1", "a.5"); !slices.EqualFunc(got, w, eq) {
			t.Errorf("%s of every key: %v, want %v", name, got, w)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err = kvscan.LeaderScan(ctx, js.Conn(), kv, jetstream.AllKeys, func(kvscan.Entry) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("scan whose callback fails: %v after %d calls, want the callback's error after 1", err, calls)
	}

	gone, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteKeyValue(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = kvscan.LeaderScan(ctx, js.Conn(), gone, jetstream.AllKeys, func(kvscan.Entry) error { return nil })
	if err == nil || errors.Is(err, kvscan.ErrNoLeader) || time.Since(start) > time.Second {
		t.Errorf("scan of a bucket that does not exist: %v after %v, want the stream's not-found error at once", err, time.Since(start))
	}
}

// TestLeaderScanWithoutLeader scans a replicated bucket whose other two nodes
// have stopped and whose leader stepped down, so that it has no leader and
// cannot elect one: the scan must fail, with kvscan.ErrNoLeader, once its
// context ends, having handed nothing to each, so that a coordinator loading
// from it does not start from nothing.
func TestLeaderScanWithoutLeader(t *testing.T) {
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	js := qxdtest.JetStream(t, nodes[0])
	ctx := qxdtest.Context(t, 60*time.Second)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "leaderless", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if err := n.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The bucket's leader, alone now, would lead until it counted its quorum
	// lost (10 s or more); asked to step down, it cannot be elected again. If
	// the leadership was on a stopped node, nobody leads it already and nobody
	// answers.
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	resp, err := js.Conn().RequestWithContext(dctx, "$JS.API.STREAM.LEADER.STEPDOWN.KV_leaderless", nil)
	dcancel()
	if err == nil {
		t.Logf("step down of the bucket's leader: %s", resp.Data)
	} else {
		t.Logf("step down of the bucket's leader: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	calls := 0
	err = kvscan.LeaderScan(sctx, js.Conn(), kv, jetstream.AllKeys, func(kvscan.Entry) error {
		calls++
		return nil
	})
	if !errors.Is(err, kvscan.ErrNoLeader) || calls != 0 {
		t.Fatalf("scan of a bucket without a leader: %v after %d entries, want kvscan.ErrNoLeader and none", err, calls)
	}
	t.Logf("scan of a bucket without a leader: %v", err)
}
