package qxd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

// IsolationLevel says which records of transactions a consumer reads, as Kafka's
// isolation.level.
type IsolationLevel int8

const (
	// ReadUncommitted reads every record up to the high watermark, those of open
	// and aborted transactions included (the default, as Kafka's).
	ReadUncommitted IsolationLevel = iota
	// ReadCommitted reads up to the partition's last stable offset (the first
	// offset of its earliest open transaction) and skips the records of aborted
	// transactions. It asks the node leading each partition for them when a read
	// reaches the last stable offset it knows: one small request per batch at the
	// head of the partition, none behind it.
	ReadCommitted
)

// String returns "read-committed" or "read-uncommitted".
func (l IsolationLevel) String() string {
	if l == ReadCommitted {
		return "read-committed"
	}
	return "read-uncommitted"
}

// ParseIsolationLevel parses "read-committed" or "read-uncommitted" (Kafka's
// read_committed and read_uncommitted too).
func ParseIsolationLevel(s string) (IsolationLevel, error) {
	switch s {
	case "read-committed", "read_committed":
		return ReadCommitted, nil
	case "read-uncommitted", "read_uncommitted":
		return ReadUncommitted, nil
	}
	return 0, semantics.Errorf(semantics.ErrInvalidConfig, "isolation level %q is not valid: use read-committed or read-uncommitted", s)
}

// Isolation sets which records of transactions the consumer reads. Default
// ReadUncommitted.
func Isolation(l IsolationLevel) ConsumerOption {
	return func(c *consumerConfig) { c.isolation = l }
}

// stableView is what a read-committed read knows of its partition's
// transactions: the last stable offset, and the aborted transactions below it
// that end at or after the offset it asked from.
type stableView struct {
	lso     int64
	aborted []semantics.AbortedTxn
}

// stableAttempt bounds one request for a partition's last stable offset (one
// without a writer anywhere finds no responders at once).
const stableAttempt = time.Second

// committedOnly holds a read-committed read at batch (its stored bytes) until
// the partition's last stable offset passes it, and reports whether the batch
// belongs to an aborted transaction, to be skipped. ok is false when the read
// ended first.
func (r *partRead) committedOnly(batch []byte) (skip, ok bool) {
	h, err := semantics.PeekBatchHeader(batch)
	if err != nil {
		return false, true // the decoder reported it already
	}
	backoff := 10 * time.Millisecond
	for h.LastOffset() >= r.stable.lso {
		if err := r.refreshStable(min(r.next, h.BaseOffset)); err == nil && h.LastOffset() < r.stable.lso {
			break
		}
		select {
		case <-r.ctx.Done():
			return false, false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
	if !h.Transactional() {
		return false, true
	}
	for _, a := range r.stable.aborted {
		if a.ProducerID == h.ProducerID && h.BaseOffset >= a.FirstOffset && h.BaseOffset <= a.LastOffset {
			return true, true
		}
	}
	return false, true
}

// refreshStable asks the node leading the partition for its last stable offset
// and the aborted transactions from offset from on.
func (r *partRead) refreshStable(from int64) error {
	ctx, cancel := context.WithTimeout(r.ctx, stableAttempt)
	defer cancel()
	lso, aborted, err := r.c.c.lastStable(ctx, r.pc.tp, from)
	if err != nil {
		return err
	}
	r.stable = stableView{lso: lso, aborted: aborted}
	return nil
}

// lastStable asks the node leading partition tp for its last stable offset and
// the aborted transactions from offset from on.
func (c *Client) lastStable(ctx context.Context, tp TopicPartition, from int64) (int64, []semantics.AbortedTxn, error) {
	body, err := json.Marshal(semantics.StableRequest{From: from})
	if err != nil {
		return -1, nil, err
	}
	m, err := c.requestWatched(ctx, semantics.LSOSubject(tp.Topic, tp.Partition), body)
	if errors.Is(err, nats.ErrNoResponders) {
		// The partition's writer answers; none runs while it is between leaders.
		return -1, nil, semantics.Errorf(semantics.ErrNotLeader,
			"last stable offset of %s: no node serves the partition now (between leaders, or its node is down); retry", semantics.PartitionString(tp.Topic, tp.Partition))
	}
	if err != nil {
		return -1, nil, wrapNATSError(err)
	}
	var rep semantics.StableReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return -1, nil, fmt.Errorf("last stable offset of %s: malformed answer: %w", semantics.PartitionString(tp.Topic, tp.Partition), err)
	}
	if err := rep.Error.Err(); err != nil {
		return -1, nil, err
	}
	return rep.LastStableOffset, rep.Aborted, nil
}

// end is where a read starting at the end of pc starts: the high watermark hwm,
// or, read-committed, the last stable offset (as Kafka's ListOffsets answers a
// read_committed client), so that a transaction open at the start is read once
// it commits.
func (sr startResolver) end(ctx context.Context, pc *partSource, hwm int64) (int64, error) {
	if !sr.committed {
		return hwm, nil
	}
	ctx, cancel := context.WithTimeout(ctx, stableAttempt)
	defer cancel()
	lso, _, err := sr.c.lastStable(ctx, pc.tp, hwm)
	if err != nil {
		return 0, fmt.Errorf("partition %s: read its last stable offset: %w", pc.tp, err)
	}
	return min(lso, hwm), nil
}
