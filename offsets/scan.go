package offsets

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// drainTimeout bounds the wait for a stopped watcher to close its channel.
const drainTimeout = 5 * time.Second

// errStop ends a scan early without an error.
var errStop = errors.New("stop scan")

// scan calls fn with the latest entry of every live (not deleted) key matching filter,
// then returns. metaOnly leaves values out. A watcher, rather than ListKeysFiltered,
// because it also gives values, and its end of the initial entries is a nil entry, so
// a scan cut short by ctx is an error and not a silently short list.
func (s *Store) scan(ctx context.Context, filter string, metaOnly bool, fn func(jetstream.KeyValueEntry) error) error {
	opts := []jetstream.WatchOpt{jetstream.IgnoreDeletes()}
	if metaOnly {
		opts = append(opts, jetstream.MetaOnly())
	}
	w, err := s.kv.Watch(ctx, filter, opts...)
	if err != nil {
		return err
	}
	defer stopWatcher(w)
	for {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return errors.New("watch of the offsets bucket ended before all keys arrived")
			case e == nil:
				return nil
			}
			if err := fn(e); err != nil {
				if errors.Is(err, errStop) {
					return nil
				}
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// keys returns the live keys matching filter, at most limit of them (0: all).
func (s *Store) keys(ctx context.Context, filter string, limit int) ([]string, error) {
	var keys []string
	err := s.scan(ctx, filter, true, func(e jetstream.KeyValueEntry) error {
		keys = append(keys, e.Key())
		if limit > 0 && len(keys) >= limit {
			return errStop
		}
		return nil
	})
	return keys, err
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

// parallel calls fn(i) for every i in [0, n), at most maxInFlight at once, and
// returns when all have returned.
func parallel(n int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}
