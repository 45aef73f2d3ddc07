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

// stableReply answers a stableRequest. Durability is the partition's durability
// as its store on the answering node writes now (describe shows it): sync or
// async, "" when that node cannot tell; DurabilityNote why it is not the
// topic's and will not become it (Writers.Durability).
type stableReply struct {
	Error            *semantics.APIError    `json:"error,omitempty"`
	LastStableOffset int64                  `json:"last_stable_offset"`
	Aborted          []semantics.AbortedTxn `json:"aborted,omitempty"`
	Durability       string                 `json:"durability,omitempty"`
	DurabilityNote   string                 `json:"durability_note,omitempty"`
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
	r, err := s.ask(ctx, leader, topic, p, from, logStart)
	if err != nil {
		return -1, nil, err
	}
	return min(r.LastStableOffset, hwm), r.Aborted, nil
}

// ask answers a stableRequest for partition p of topic: from this node's writer,
// or from node leader's over NATS.
func (s *stableOffsets) ask(ctx context.Context, leader, topic string, p int32, from, logStart int64) (stableReply, error) {
	lso, aborted, err := s.writers.Stable(topic, p, from, logStart)
	if err == nil {
		r := stableReply{LastStableOffset: lso, Aborted: aborted}
		r.Durability, r.DurabilityNote = s.writers.Durability(topic, p)
		return r, nil
	}
	if leader == "" || leader == s.node {
		return stableReply{}, err
	}
	body, err := json.Marshal(stableRequest{Topic: topic, Partition: p, From: from, LogStart: logStart})
	if err != nil {
		return stableReply{}, err
	}
	m, err := s.nc.RequestWithContext(ctx, semantics.StableSubject(leader), body)
	if err != nil {
		return stableReply{}, fmt.Errorf("last stable offset of %s: ask node %s: %w", semantics.PartitionString(topic, p), leader, err)
	}
	var r stableReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return stableReply{}, fmt.Errorf("last stable offset of %s: node %s answered malformed JSON: %w", semantics.PartitionString(topic, p), leader, err)
	}
	if err := r.Error.Err(); err != nil {
		return stableReply{}, err
	}
	return r, nil
}

// txnDoor is the NATS door of a node's transactions: node to node, it answers
// the last stable offset of the partitions this node leads; to clients, while
// this node coordinates transactions, it takes the transaction coordinator's
// requests (semantics.Txn*), decodes each, calls the Transactions service and
// encodes its answer. It follows the service: it subscribes to semantics.TxnAll
// while the node coordinates and unsubscribes when it stops, so a client's
// request finds the coordinating node, or no responders.
type txnDoor struct {
	nc      *nats.Conn
	node    string
	writers *Writers
	txns    *Transactions
	obs     *observers
	wg      sync.WaitGroup // request handlers

	ssub *nats.Subscription

	cancel context.CancelFunc
	loop   sync.WaitGroup
	mu     sync.Mutex
	tsub   *nats.Subscription // semantics.TxnAll, while coordinating
}

// txnDoorEvery is how often the door follows the coordinator's moves.
const txnDoorEvery = 100 * time.Millisecond

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
	if d.txns != nil {
		ctx, cancel := context.WithCancel(context.Background())
		d.cancel = cancel
		d.follow()
		d.loop.Add(1)
		go func() {
			defer d.loop.Done()
			everyTick(ctx, txnDoorEvery, func() bool { d.follow(); return true })
		}()
	}
	return d.nc.Flush()
}

// follow subscribes to the coordinator's subjects while this node coordinates
// transactions, and unsubscribes when it no longer does.
func (d *txnDoor) follow() {
	on := d.txns.Coordinating()
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case on && d.tsub == nil:
		sub, err := d.nc.Subscribe(semantics.TxnAll, func(m *nats.Msg) {
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.serveTxn(m)
			}()
		})
		if err == nil {
			d.tsub = sub
		}
	case !on && d.tsub != nil:
		_ = d.tsub.Unsubscribe()
		d.tsub = nil
	}
}

func (d *txnDoor) stop() {
	if d.cancel != nil {
		d.cancel()
	}
	d.loop.Wait()
	d.mu.Lock()
	for _, s := range []*nats.Subscription{d.ssub, d.tsub} {
		if s != nil {
			_ = s.Unsubscribe()
		}
	}
	d.tsub = nil
	d.mu.Unlock()
	d.wg.Wait()
}

// txnTimeout bounds one transaction request; an end waits for its markers.
const txnTimeout = 30 * time.Second

// serveTxn answers one transaction coordinator request within txnTimeout.
func (d *txnDoor) serveTxn(m *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), txnTimeout)
	defer cancel()
	b, err := json.Marshal(d.handleTxn(ctx, m))
	if err != nil {
		b, _ = json.Marshal(semantics.TxnResponse{Error: semantics.NewAPIError(err)})
	}
	if d.obs != nil {
		d.obs.answeredJSON(m.Subject, b)
	}
	_ = m.Respond(b)
}

// handleTxn decodes m by its subject and calls the Transactions method for it.
func (d *txnDoor) handleTxn(ctx context.Context, m *nats.Msg) semantics.TxnResponse {
	fail := func(err error) semantics.TxnResponse { return semantics.TxnResponse{Error: semantics.NewAPIError(err)} }
	var req semantics.TxnRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return fail(semantics.Errorf(semantics.ErrInvalidRequest, "malformed %s request: %v", m.Subject, err))
	}
	op, token := semantics.SplitTxnSubject(m.Subject)
	if op != semantics.TxnList {
		if req.TransactionalID == "" {
			return fail(semantics.Errorf(semantics.ErrInvalidRequest, "%s: the request names no transactional id: set transactional_id", op))
		}
		if token != semantics.EncodeGroupID(req.TransactionalID) {
			return fail(semantics.Errorf(semantics.ErrInvalidRequest,
				"%s: the subject's transactional id does not match the request's %q: send it on %s", op, req.TransactionalID, semantics.TxnSubject(op, req.TransactionalID)))
		}
	}
	t, id := d.txns, req.TransactionalID
	var err error
	switch op {
	case semantics.TxnInit:
		timeout := time.Duration(req.TimeoutMs) * time.Millisecond
		var resp semantics.TxnResponse
		resp.ProducerID, resp.Epoch, err = t.InitProducerID(ctx, id, timeout, req.ProducerID, req.Epoch)
		if err != nil {
			return fail(err)
		}
		return resp
	case semantics.TxnAddPartitions:
		err = t.AddPartitions(ctx, id, req.ProducerID, req.Epoch, req.Partitions)
	case semantics.TxnAddGroup:
		err = t.AddGroup(ctx, id, req.ProducerID, req.Epoch, req.Group)
	case semantics.TxnCommitOffsets:
		offs := make([]TxnOffset, len(req.Offsets))
		for i, o := range req.Offsets {
			offs[i] = TxnOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset, Metadata: o.Metadata}
		}
		err = t.CommitOffsets(ctx, id, req.ProducerID, req.Epoch, req.Group, req.Generation, req.Member, offs)
	case semantics.TxnEnd:
		err = t.EndTxn(ctx, id, req.ProducerID, req.Epoch, req.Commit)
	case semantics.TxnDescribe:
		desc, derr := t.Describe(id)
		if derr != nil {
			return fail(derr)
		}
		return semantics.TxnResponse{Txn: &desc}
	case semantics.TxnList:
		list, lerr := t.List()
		if lerr != nil {
			return fail(lerr)
		}
		if list == nil {
			list = []semantics.TxnDescription{}
		}
		return semantics.TxnResponse{Txns: list}
	default:
		err = semantics.Errorf(semantics.ErrInvalidRequest, "unknown transaction request %s", m.Subject)
	}
	if err != nil {
		return fail(err)
	}
	return semantics.TxnResponse{}
}

// serveStable answers a stableRequest from this node's writers (a read of
// their memory and of their stores' settings: no I/O, so it runs on the
// subscription's goroutine).
func (d *txnDoor) serveStable(m *nats.Msg) {
	var req stableRequest
	var r stableReply
	if err := json.Unmarshal(m.Data, &req); err != nil {
		r.Error = semantics.NewAPIError(semantics.Errorf(semantics.ErrInvalidRequest, "malformed %s request: %v", m.Subject, err))
	} else if lso, aborted, err := d.writers.Stable(req.Topic, req.Partition, req.From, req.LogStart); err != nil {
		r.Error = semantics.NewAPIError(err)
	} else {
		r.LastStableOffset, r.Aborted = lso, aborted
		r.Durability, r.DurabilityNote = d.writers.Durability(req.Topic, req.Partition)
	}
	b, _ := json.Marshal(r)
	_ = m.Respond(b)
}

// lastStable returns partition p's last stable offset for describe, -1 when the
// node leading it cannot tell (the partition is between leaders, or that node
// does not answer), and its durability as that node's store writes now (Durability
// and DurabilityNote of the reply; "": unknown).
func (a *Admin) lastStable(ctx context.Context, leader, topic string, p int32, hwm, logStart int64) (int64, stableReply) {
	if a.stable == nil {
		return hwm, stableReply{}
	}
	ctx, cancel := context.WithTimeout(ctx, stableTimeout)
	defer cancel()
	r, err := a.stable.ask(ctx, leader, topic, p, hwm, logStart)
	if err != nil {
		a.log.Debug("last stable offset unknown", "topic", topic, "partition", p, "node", leader, "err", err)
		return -1, stableReply{}
	}
	return min(r.LastStableOffset, hwm), r
}

// stableTimeout bounds a request for another node's last stable offset.
const stableTimeout = 2 * time.Second
