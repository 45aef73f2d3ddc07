// Package kvscan reads the live entries of a key-value bucket, with the bucket's
// watcher, starting again when the read stalls: once (Scan), as a followed view
// (Follow), or as a loop that reconciles what a service runs with the bucket
// (Reconciler); every live entry as the bucket's leader holds them (LeaderScan);
// and one key's entry with a direct get, sent again past a replica that does not
// answer (Get), or as the bucket's leader holds it (LeaderGet, GetFresh).
package kvscan

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Quiet is how long a pass may go without an entry before it is abandoned. A
// watcher started while the bucket's stream is between leaders (right after the
// node leading it stopped) can stay silent until its context ends; a new one is
// served by the new leader.
const Quiet = 3 * time.Second

// drainTimeout bounds the wait for a stopped watcher to close its channel.
const drainTimeout = 5 * time.Second

// errStalled marks a pass that went Quiet without an entry.
var errStalled = errors.New("key-value scan stalled")

// Scan calls each with the latest entry of every live (not deleted) key matching
// filter (jetstream.AllKeys for all), then returns; opts are added to the watcher's.
// A watcher, rather than ListKeys, because it also gives values, and its end of the
// initial entries is a nil entry, so a scan cut short is an error and not a silently
// short list. A pass that stalls for Quiet is abandoned and a new one begins until
// ctx ends: start is called before every pass, so that the caller can drop what an
// abandoned pass gave it. An error from each ends the scan with that error.
func Scan(ctx context.Context, kv jetstream.KeyValue, filter string, start func(), each func(jetstream.KeyValueEntry) error, opts ...jetstream.WatchOpt) error {
	return scan(ctx, kv, filter, start, each, append([]jetstream.WatchOpt{jetstream.IgnoreDeletes()}, opts...))
}

// scan is Scan with deleted keys' markers handed to each too.
func scan(ctx context.Context, kv jetstream.KeyValue, filter string, start func(), each func(jetstream.KeyValueEntry) error, opts []jetstream.WatchOpt) error {
	for {
		start()
		err := pass(ctx, kv, filter, each, opts)
		if !errors.Is(err, errStalled) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// pass is one read of the bucket with one watcher.
func pass(ctx context.Context, kv jetstream.KeyValue, filter string, each func(jetstream.KeyValueEntry) error, opts []jetstream.WatchOpt) error {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	quiet := time.AfterFunc(Quiet, func() { cancel(errStalled) })
	defer quiet.Stop()
	ended := func() error {
		if err := context.Cause(wctx); errors.Is(err, errStalled) {
			return errStalled
		}
		return ctx.Err()
	}
	w, err := kv.Watch(wctx, filter, opts...)
	if err != nil {
		if wctx.Err() != nil {
			return ended()
		}
		return err
	}
	defer stopWatcher(w)
	for {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				if wctx.Err() != nil { // the watcher stops when its context ends
					return ended()
				}
				return errors.New("the bucket's watch ended before all keys arrived")
			case e == nil:
				return nil
			}
			quiet.Reset(Quiet)
			if err := each(e); err != nil {
				return err
			}
		case <-wctx.Done():
			return ended()
		}
	}
}

// Follow starts a watcher of every key of kv, hands the bucket's current entries to
// apply, and returns it once they are in; the caller reads its later updates, and
// calls stop to end it. A watcher that goes Quiet without an entry before then is
// replaced by a new one, which hands the entries to apply again (apply must take an
// entry twice), until ctx ends.
func Follow(ctx context.Context, kv jetstream.KeyValue, apply func(jetstream.KeyValueEntry)) (w jetstream.KeyWatcher, stop func(), err error) {
	type made struct {
		w   jetstream.KeyWatcher
		err error
	}
	for {
		// The watcher lives as long as wctx: nats.go unsubscribes when it ends.
		wctx, cancel := context.WithCancel(context.Background())
		mc := make(chan made, 1)
		go func() {
			w, err := kv.WatchAll(wctx)
			mc <- made{w, err}
		}()
		quiet := time.NewTimer(Quiet)
		w = nil
		stalled := false
		select {
		case m := <-mc:
			if m.err != nil {
				quiet.Stop()
				cancel()
				return nil, nil, m.err
			}
			w = m.w
		case <-quiet.C:
			stalled = true
		case <-ctx.Done():
			quiet.Stop()
			cancel()
			return nil, nil, ctx.Err()
		}
		for !stalled {
			select {
			case e, ok := <-w.Updates():
				switch {
				case !ok:
					stalled = true // the watch ended early: start again
				case e == nil:
					quiet.Stop()
					watcher := w
					return w, func() { cancel(); stopWatcher(watcher) }, nil
				default:
					quiet.Reset(Quiet)
					apply(e)
				}
			case <-quiet.C:
				stalled = true
			case <-ctx.Done():
				quiet.Stop()
				cancel()
				stopWatcher(w)
				return nil, nil, ctx.Err()
			}
		}
		quiet.Stop()
		cancel()
		if w != nil {
			stopWatcher(w)
		}
	}
}

// stopWatcher unsubscribes w and drains its channel until nats.go closes it: the
// watcher's callback blocks on a full channel, and a blocked callback would hold the
// subscription's delivery goroutine forever.
func stopWatcher(w jetstream.KeyWatcher) {
	_ = w.Stop()
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}
