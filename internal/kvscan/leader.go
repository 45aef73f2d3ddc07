package kvscan

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// LeaderGet reads key's latest entry from bucket as the bucket stream's leader
// holds it, with the JetStream API's message get, which only the leader answers:
// unlike Get, it sees every write the leader has acknowledged, so a read right
// after a write (a compare-and-set's next round, a describe after a verify) gets
// that write. It returns the entry's value and revision, or
// jetstream.ErrKeyNotFound for a key with no entry, or whose last entry deletes
// or purges it. With no leader, nothing answers: it sends the request again
// after leaderFirstAttempt, leaderShortAttempts times, then after twice as
// long each time up to leaderScanAttempt (a leader elected after a request was sent never sees
// it; the old leader, woken from a pause or back from a cut, could answer it
// from its own store) until ctx ends, and then fails with an error that wraps
// ErrNoLeader.
func LeaderGet(ctx context.Context, nc *nats.Conn, bucket, key string) ([]byte, uint64, error) {
	m, err := leaderMsg(ctx, nc, bucket, map[string]any{"last_by_subj": semantics.KVKeySubject(bucket, key)})
	if err != nil {
		return nil, 0, fmt.Errorf("read %s from bucket %s's leader: %w", key, bucket, err)
	}
	if m == nil {
		return nil, 0, jetstream.ErrKeyNotFound
	}
	if del, err := m.deletes(); err != nil || del {
		if err != nil {
			return nil, 0, fmt.Errorf("read %s from bucket %s's leader: %w", key, bucket, err)
		}
		return nil, 0, jetstream.ErrKeyNotFound
	}
	return m.Data, m.Seq, nil
}

// GetFresh reads key from bucket as LeaderGet does, waiting at most wait for the
// leader's answer; when none comes (no leader, or one too slow), it reads the
// entry as a replica holds it (Get), which may be behind the leader's but keeps
// a read of a bucket without a leader from waiting out ctx.
func GetFresh(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue, key string, wait time.Duration) ([]byte, uint64, error) {
	v, rev, _, err := GetFreshFrom(ctx, nc, kv, key, wait)
	return v, rev, err
}

// GetFreshFrom is GetFresh, and also says whether the bucket's leader answered
// (fromLeader false: a replica did, and its entry, or its not-found, may be
// older than the leader's).
func GetFreshFrom(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue, key string, wait time.Duration) (v []byte, rev uint64, fromLeader bool, err error) {
	lctx, cancel := context.WithTimeout(ctx, wait)
	v, rev, err = LeaderGet(lctx, nc, kv.Bucket(), key)
	cancel()
	if err == nil || errors.Is(err, jetstream.ErrKeyNotFound) || ctx.Err() != nil || !Transient(err) {
		return v, rev, true, err
	}
	e, err := Get(ctx, kv, key)
	if err != nil {
		return nil, 0, false, err
	}
	return e.Value(), e.Revision(), false, nil
}
