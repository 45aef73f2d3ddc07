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

// TestScan reads a bucket on a real node: the latest value of every live key once,
// deleted keys left out, start called before the (single) pass, and an error from
// each ends the scan with it.
func TestScan(t *testing.T) {
	n := qxdtest.StartNode(t)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "scan"})
	if err != nil {
		t.Fatal(err)
	}
	for _, kvp := range [][2]string{{"a.1", "old"}, {"a.1", "new"}, {"a.2", "x"}, {"b.1", "y"}, {"a.3", "gone"}} {
		if _, err := kv.PutString(ctx, kvp[0], kvp[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Delete(ctx, "a.3"); err != nil {
		t.Fatal(err)
	}

	var got []string
	starts := 0
	err = kvscan.Scan(ctx, kv, "a.>", func() { starts++; got = got[:0] }, func(e jetstream.KeyValueEntry) error {
		got = append(got, e.Key()+"="+string(e.Value()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"a.1=new", "a.2=x"}; !slices.Equal(got, want) || starts != 1 {
		t.Fatalf("scan of a.>: %v after %d passes, want %v after 1", got, starts, want)
	}

	stop := errors.New("stop")
	calls := 0
	err = kvscan.Scan(ctx, kv, jetstream.AllKeys, func() {}, func(jetstream.KeyValueEntry) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("scan whose callback fails: %v after %d calls, want the callback's error after 1", err, calls)
	}

	empty, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	if err := kvscan.Scan(ctx, empty, jetstream.AllKeys, func() {}, func(jetstream.KeyValueEntry) error {
		t.Error("an entry from an empty bucket")
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := kvscan.Scan(done, kv, jetstream.AllKeys, func() {}, func(jetstream.KeyValueEntry) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("scan with an ended context: %v, want context.Canceled", err)
	}
}

// TestFollow loads a bucket's current entries through apply before it returns, then
// hands later changes to the caller through the watcher, until stop.
func TestFollow(t *testing.T) {
	n := qxdtest.StartNode(t)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "follow"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if _, err := kv.PutString(ctx, k, "1"); err != nil {
			t.Fatal(err)
		}
	}
	var loaded []string
	w, stop, err := kvscan.Follow(ctx, kv, func(e jetstream.KeyValueEntry) { loaded = append(loaded, e.Key()) })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(loaded)
	if !slices.Equal(loaded, []string{"a", "b"}) {
		t.Fatalf("loaded %v before Follow returned, want [a b]", loaded)
	}
	if _, err := kv.PutString(ctx, "c", "2"); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-w.Updates():
		if e == nil || e.Key() != "c" {
			t.Fatalf("update after the load: %v, want key c", e)
		}
	case <-ctx.Done():
		t.Fatal("no update for a key put after the load")
	}
	stop()
	for range w.Updates() { // stop ends the watch: its channel closes
	}
}
