package kvscan

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Reconciler keeps a service's view of a KV bucket current and reconciles what the
// service runs with it: after every change, on a Kick, and Every.
type Reconciler struct {
	// Every is how often Reconcile runs when nothing changes.
	Every time.Duration
	// Kick, when not nil, makes Reconcile run at once.
	Kick <-chan struct{}
	// FirstNow makes Start reconcile once before it returns; otherwise the loop's
	// first reconcile runs in its goroutine.
	FirstNow bool
	// Apply takes one changed entry of the bucket.
	Apply func(jetstream.KeyValueEntry)
	// Reconcile brings what runs in line with the entries applied so far.
	Reconcile func(context.Context)
}

// Start loads the bucket's current entries through Apply before it returns (they
// arrive before a nil marker), then follows the bucket in a goroutine counted by wg
// until the returned cancel; the watch stops with the loop.
func (r Reconciler) Start(kv jetstream.KeyValue, wg *sync.WaitGroup) (context.CancelFunc, error) {
	// A watcher that goes quiet before the current entries are in (the bucket's
	// stream between leaders) is replaced; see Follow.
	watch, stopWatch, err := Follow(context.Background(), kv, r.Apply)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	if r.FirstNow {
		r.Reconcile(ctx)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stopWatch()
		t := time.NewTicker(r.Every)
		defer t.Stop()
		if !r.FirstNow {
			r.Reconcile(ctx)
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
					r.Apply(e)
				}
			case <-r.Kick:
			case <-t.C:
			}
			r.Reconcile(ctx)
		}
	}()
	return cancel, nil
}
