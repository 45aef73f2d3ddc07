package server

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
)

// watchAndReconcile keeps a service's view of a KV bucket current and reconciles what
// the node runs with it: after every change, on a kick, and every reconcileEvery. It
// loads the bucket's current entries through apply before it returns (they arrive
// before a nil marker); with firstNow it also reconciles once before returning, else
// the loop does first. The loop runs in a goroutine counted by wg until the returned
// cancel; the watch outlives ctx-free callers and stops with the loop.
func watchAndReconcile(kv jetstream.KeyValue, wg *sync.WaitGroup, kick <-chan struct{}, firstNow bool,
	apply func(jetstream.KeyValueEntry), reconcile func(context.Context)) (context.CancelFunc, error) {
	// A watcher that goes quiet before the current entries are in (the bucket's
	// stream between leaders) is replaced; see kvscan.Follow.
	watch, stopWatch, err := kvscan.Follow(context.Background(), kv, apply)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	if firstNow {
		reconcile(ctx)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stopWatch()
		t := time.NewTicker(reconcileEvery)
		defer t.Stop()
		if !firstNow {
			reconcile(ctx)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-watch.Updates():
				if !ok {
					return
				}
				if e != nil {
					apply(e)
				}
			case <-kick:
			case <-t.C:
			}
			reconcile(ctx)
		}
	}()
	return cancel, nil
}
