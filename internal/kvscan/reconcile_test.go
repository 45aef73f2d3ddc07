package kvscan_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestReconciler follows a bucket on a real node: the current entries are applied
// before Start returns, FirstNow reconciles before it returns too, a change and a
// kick each lead to a reconcile, and cancel ends the loop.
func TestReconciler(t *testing.T) {
	n := qxdtest.StartNode(t)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "reconcile"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "a", "1"); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	view := map[string]string{}
	var reconciles atomic.Int64
	kick := make(chan struct{}, 1)
	var wg sync.WaitGroup
	cancel, err := kvscan.Reconciler{
		Every: time.Hour, Kick: kick, FirstNow: true,
		Apply: func(e jetstream.KeyValueEntry) {
			mu.Lock()
			defer mu.Unlock()
			if e.Operation() == jetstream.KeyValuePut {
				view[e.Key()] = string(e.Value())
			} else {
				delete(view, e.Key())
			}
		},
		Reconcile: func(context.Context) { reconciles.Add(1) },
	}.Start(kv, &wg)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if view["a"] != "1" {
		t.Errorf("after Start: view %v, want a=1", view)
	}
	mu.Unlock()
	if got := reconciles.Load(); got != 1 {
		t.Errorf("after Start with FirstNow: %d reconciles, want 1", got)
	}

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := kv.PutString(ctx, "b", "2"); err != nil {
		t.Fatal(err)
	}
	waitFor("change applied and reconciled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return view["b"] == "2" && reconciles.Load() >= 2
	})
	before := reconciles.Load()
	kick <- struct{}{}
	waitFor("kick reconciled", func() bool { return reconciles.Load() > before })

	cancel()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("loop still running 10s after cancel")
	}
}
