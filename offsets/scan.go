package offsets

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/kvscan"
)

// errStop ends a scan early without an error.
var errStop = errors.New("stop scan")

// scan calls fn with the latest entry of every live (not deleted) key matching filter,
// then returns; metaOnly leaves values out. A read that stalls (the bucket's stream
// between leaders) starts again, after start: start drops what fn collected.
func (s *Store) scan(ctx context.Context, filter string, metaOnly bool, start func(), fn func(jetstream.KeyValueEntry) error) error {
	var opts []jetstream.WatchOpt
	if metaOnly {
		opts = append(opts, jetstream.MetaOnly())
	}
	err := kvscan.Scan(ctx, s.kv, filter, start, fn, opts...)
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// keys returns the live keys matching filter, at most limit of them (0: all).
func (s *Store) keys(ctx context.Context, filter string, limit int) ([]string, error) {
	var keys []string
	err := s.scan(ctx, filter, true, func() { keys = keys[:0] }, func(e jetstream.KeyValueEntry) error {
		keys = append(keys, e.Key())
		if limit > 0 && len(keys) >= limit {
			return errStop
		}
		return nil
	})
	return keys, err
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
