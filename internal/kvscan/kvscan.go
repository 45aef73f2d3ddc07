// Package kvscan reads the live entries of a key-value bucket once, with the
// bucket's watcher, and starts again when the read stalls.
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
	opts = append([]jetstream.WatchOpt{jetstream.IgnoreDeletes()}, opts...)
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
