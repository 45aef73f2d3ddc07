package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

// stableRequest asks a node for the last stable offset of a partition it leads
// (JSON, on semantics.StableSubject of that node), and the aborted transactions
// that end at or after From.
type stableRequest struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	From      int64  `json:"from"`
	LogStart  int64  `json:"log_start"`
}

// stableReply answers a stableRequest.
type stableReply struct {
	Error            *semantics.APIError    `json:"error,omitempty"`
	LastStableOffset int64                  `json:"last_stable_offset"`
	Aborted          []semantics.AbortedTxn `json:"aborted,omitempty"`
}

// stableOffsets reads partitions' last stable offsets: from this node's writers
// for the partitions it leads, and from the leading node, over NATS, for the
// others. Only a partition's writer knows its open transactions.
type stableOffsets struct {
	nc      *nats.Conn
	node    string // this node's name
	writers *Writers
}

// Stable returns the last stable offset of partition p of topic, led by node
// leader, and its aborted transactions that end at or after from. hwm and
// logStart are the partition's offsets as the caller read them: the last stable
// offset is never above hwm.
func (s *stableOffsets) Stable(ctx context.Context, leader, topic string, p int32, from, hwm, logStart int64) (int64, []semantics.AbortedTxn, error) {
	lso, aborted, err := s.writers.Stable(topic, p, from, logStart)
	if err == nil {
		return min(lso, hwm), aborted, nil
	}
	if leader == "" || leader == s.node {
		return -1, nil, err
	}
	body, err := json.Marshal(stableRequest{Topic: topic, Partition: p, From: from, LogStart: logStart})
	if err != nil {
		return -1, nil, err
	}
	m, err := s.nc.RequestWithContext(ctx, semantics.StableSubject(leader), body)
	if err != nil {
		return -1, nil, fmt.Errorf("last stable offset of %s: ask node %s: %w", semantics.PartitionString(topic, p), leader, err)
	}
	var r stableReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return -1, nil, fmt.Errorf("last stable offset of %s: node %s answered malformed JSON: %w", semantics.PartitionString(topic, p), leader, err)
	}
	if err := r.Error.Err(); err != nil {
		return -1, nil, err
	}
	return min(r.LastStableOffset, hwm), r.Aborted, nil
}

// txnDoor is the NATS door of a node's transaction state: node to node, it
// answers the last stable offset of the partitions this node leads.
type txnDoor struct {
	nc      *nats.Conn
	node    string
	writers *Writers
	wg      sync.WaitGroup

	ssub *nats.Subscription
}

func (d *txnDoor) start() error {
	var err error
	d.ssub, err = d.nc.Subscribe(semantics.StableSubject(d.node), func(m *nats.Msg) {
		d.wg.Add(1)
		defer d.wg.Done()
		d.serveStable(m)
	})
	if err != nil {
		return fmt.Errorf("start transaction API: %w", err)
	}
	return d.nc.Flush()
}

func (d *txnDoor) stop() {
	if d.ssub != nil {
		_ = d.ssub.Unsubscribe()
	}
	d.wg.Wait()
}

// serveStable answers a stableRequest from this node's writers (a read of
// their memory: no I/O, so it runs on the subscription's goroutine).
func (d *txnDoor) serveStable(m *nats.Msg) {
	var req stableRequest
	var r stableReply
	if err := json.Unmarshal(m.Data, &req); err != nil {
		r.Error = semantics.NewAPIError(semantics.Errorf(semantics.ErrInvalidRequest, "malformed %s request: %v", m.Subject, err))
	} else if lso, aborted, err := d.writers.Stable(req.Topic, req.Partition, req.From, req.LogStart); err != nil {
		r.Error = semantics.NewAPIError(err)
	} else {
		r.LastStableOffset, r.Aborted = lso, aborted
	}
	b, _ := json.Marshal(r)
	_ = m.Respond(b)
}

// lastStable returns partition p's last stable offset for describe, -1 when the
// node leading it cannot tell (the partition is between leaders, or that node
// does not answer).
func (a *Admin) lastStable(ctx context.Context, leader, topic string, p int32, hwm, logStart int64) int64 {
	if a.stable == nil {
		return hwm
	}
	ctx, cancel := context.WithTimeout(ctx, stableTimeout)
	defer cancel()
	lso, _, err := a.stable.Stable(ctx, leader, topic, p, hwm, hwm, logStart)
	if err != nil {
		a.log.Debug("last stable offset unknown", "topic", topic, "partition", p, "node", leader, "err", err)
		return -1
	}
	return lso
}

// stableTimeout bounds a request for another node's last stable offset.
const stableTimeout = 2 * time.Second
