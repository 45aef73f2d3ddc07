package kvscan

import (
	"context"
	"encoding/json"
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
// or purges it. With no leader, nothing answers: it waits until ctx ends.
func LeaderGet(ctx context.Context, nc *nats.Conn, bucket, key string) ([]byte, uint64, error) {
	req, _ := json.Marshal(map[string]string{"last_by_subj": semantics.KVKeySubject(bucket, key)})
	resp, err := nc.RequestWithContext(ctx, semantics.Subject(semantics.JSStreamMsgGetPrefix, semantics.KVStream(bucket)), req)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s from bucket %s's leader: %w", key, bucket, err)
	}
	var out struct {
		Message *struct {
			Seq    uint64 `json:"seq"`
			Header []byte `json:"hdrs"`
			Data   []byte `json:"data"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return nil, 0, fmt.Errorf("read %s from bucket %s's leader: %w", key, bucket, err)
	}
	switch {
	case out.Error != nil && out.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound, out.Error == nil && out.Message == nil:
		return nil, 0, jetstream.ErrKeyNotFound
	case out.Error != nil:
		return nil, 0, fmt.Errorf("read %s from bucket %s's leader: %w", key, bucket, out.Error)
	}
	if len(out.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(out.Message.Header)
		if err != nil {
			return nil, 0, fmt.Errorf("read %s from bucket %s's leader: its headers: %w", key, bucket, err)
		}
		if op := h.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			return nil, 0, jetstream.ErrKeyNotFound
		}
	}
	return out.Message.Data, out.Message.Seq, nil
}

// GetFresh reads key from bucket as LeaderGet does, waiting at most wait for the
// leader's answer; when none comes (no leader, or one too slow), it reads the
// entry as a replica holds it (Get), which may be behind the leader's but keeps
// a read of a bucket without a leader from waiting out ctx.
func GetFresh(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue, key string, wait time.Duration) ([]byte, uint64, error) {
	lctx, cancel := context.WithTimeout(ctx, wait)
	v, rev, err := LeaderGet(lctx, nc, kv.Bucket(), key)
	cancel()
	if err == nil || errors.Is(err, jetstream.ErrKeyNotFound) || ctx.Err() != nil || !Transient(err) {
		return v, rev, err
	}
	e, gerr := Get(ctx, kv, key)
	if gerr != nil {
		return nil, 0, gerr
	}
	return e.Value(), e.Revision(), nil
}
