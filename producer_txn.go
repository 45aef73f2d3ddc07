package qxd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

// DefaultTransactionTimeout is how long a transaction may stay open before the
// coordinator aborts it (Kafka's transaction.timeout.ms default).
const DefaultTransactionTimeout = time.Minute

// TransactionalID makes the producer transactional, as Kafka's transactional.id:
// NewProducer registers id with the transaction coordinator, which fences the
// producers that had it before (their produce, commit and offset commit fail
// with ErrProducerFenced or ErrInvalidProducerEpoch, and a transaction of theirs
// still open is aborted). A transactional producer sends records only between
// BeginTransaction and CommitTransaction or AbortTransaction; read-committed
// consumers see them only once the transaction commits. Needs idempotence and
// acks all (the defaults). Default: "" (not transactional).
func TransactionalID(id string) ProducerOption {
	return func(c *producerConfig) { c.txnID = id }
}

// TransactionTimeout is how long a transaction may stay open before the
// coordinator aborts it (Kafka's transaction.timeout.ms), at most 15 minutes.
// Default: DefaultTransactionTimeout.
func TransactionTimeout(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.txnTimeout = d }
}

// Errors of transactional producers.
var (
	// ErrNotTransactional: a transaction method on a producer made without
	// TransactionalID.
	ErrNotTransactional = errors.New("qxd: the producer is not transactional: create it with qxd.TransactionalID(id)")
	// ErrNoTransaction: a record produced, or a transaction ended, outside a
	// transaction (call BeginTransaction first).
	ErrNoTransaction = errors.New("qxd: no transaction is open: call BeginTransaction first")
	// ErrTransactionOpen: BeginTransaction while a transaction is open.
	ErrTransactionOpen = errors.New("qxd: a transaction is already open: commit or abort it first")
	// ErrTransactionFailed: CommitTransaction of a transaction some of whose
	// records failed; abort it (AbortTransaction) and produce them again.
	ErrTransactionFailed = errors.New("qxd: records of the transaction failed: abort it and retry the transaction")
	// ErrProducerFenced: another producer registered the same transactional id.
	ErrProducerFenced = semantics.ErrProducerFenced
	// ErrInvalidProducerEpoch: a producer fenced by a newer epoch of its id.
	ErrInvalidProducerEpoch = semantics.ErrInvalidProducerEpoch
)

// producerTxn is a transactional producer's state.
type producerTxn struct {
	c       *Client
	id      string
	timeout time.Duration
	pid     int64 // from the coordinator; fixed for the producer's life
	epoch   int16

	mu     sync.Mutex
	open   bool
	parts  map[TopicPartition]bool // added to the open transaction
	groups map[string]bool
	failed error // the first record of the open transaction that failed
	// Partitions wait in pending while an AddPartitions request is in flight
	// (adding), and go together in the next one: one coordinator round trip for
	// the partitions whose first batches are ready meanwhile, not one each.
	pending map[TopicPartition]bool
	adding  bool
	added   chan struct{} // closed when the request in flight is answered
}

// initTxn registers the producer's transactional id with the coordinator.
func (p *Producer) initTxn() error {
	ctx, cancel := context.WithTimeout(p.ctx, p.c.cfg.reqTimeout)
	defer cancel()
	t := &producerTxn{c: p.c, id: p.cfg.txnID, timeout: p.cfg.txnTimeout}
	var resp semantics.TxnResponse
	err := t.request(ctx, semantics.TxnInit, semantics.TxnRequest{TransactionalID: t.id,
		TimeoutMs: int32(t.timeout / time.Millisecond), ProducerID: -1, Epoch: -1}, &resp)
	if err != nil {
		return fmt.Errorf("producer: register transactional id %q: %w", t.id, err)
	}
	t.pid, t.epoch = resp.ProducerID, resp.Epoch
	p.txn = t
	return nil
}

// request sends a transaction coordinator request, retrying while no node
// coordinates transactions (a failover) or an attempt goes unanswered for the
// client's request timeout, until ctx ends.
func (t *producerTxn) request(ctx context.Context, op string, req semantics.TxnRequest, out *semantics.TxnResponse) error {
	subject := op
	if op != semantics.TxnList {
		subject = semantics.TxnSubject(op, req.TransactionalID)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.c.cfg.reqTimeout)
		defer cancel()
	}
	backoff := 50 * time.Millisecond
	for {
		// Bound each attempt, as Kafka's request.timeout.ms does: a request the
		// coordinating node took and then died with gets no answer, not even
		// "no responders", and is sent again. Every request is safe to repeat:
		// a partition or group added again changes nothing, offsets are
		// overwritten, an end already done is answered as done, and a second
		// InitProducerId gives the next epoch.
		actx, cancel := context.WithTimeout(ctx, t.c.cfg.reqTimeout)
		err := t.c.txnRequestOnce(actx, subject, b, out)
		cancel()
		retry := errors.Is(err, semantics.ErrUnavailable) || errors.Is(err, semantics.ErrNotCoordinator) ||
			errors.Is(err, semantics.ErrCoordinatorNotAvailable) || errors.Is(err, semantics.ErrConcurrentTransactions) ||
			errors.Is(err, semantics.ErrTimeout)
		if !retry {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// txnRequestOnce sends one transaction coordinator request and decodes its
// answer into out; it returns the answer's error.
func (c *Client) txnRequestOnce(ctx context.Context, subject string, body []byte, out *semantics.TxnResponse) error {
	m, err := c.requestWatched(ctx, subject, body)
	if err != nil {
		return wrapNATSError(err)
	}
	*out = semantics.TxnResponse{}
	if err := json.Unmarshal(m.Data, out); err != nil {
		return semantics.Errorf(semantics.ErrInvalidRequest, "malformed response on %s: %v", subject, err)
	}
	return out.Failure()
}

// ident is a request carrying the producer's identity.
func (t *producerTxn) ident() semantics.TxnRequest {
	return semantics.TxnRequest{TransactionalID: t.id, ProducerID: t.pid, Epoch: t.epoch}
}

// BeginTransaction opens a transaction: the records produced until
// CommitTransaction or AbortTransaction are part of it. It fails with
// ErrNotTransactional on a producer made without TransactionalID, and with
// ErrTransactionOpen while one is open.
func (p *Producer) BeginTransaction() error {
	t := p.txn
	if t == nil {
		return ErrNotTransactional
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open {
		return ErrTransactionOpen
	}
	t.open, t.parts, t.groups, t.failed = true, map[TopicPartition]bool{}, map[string]bool{}, nil
	clear(t.pending)
	return nil
}

// checkOpen fails a record produced outside a transaction.
func (t *producerTxn) checkOpen() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.open {
		return ErrNoTransaction
	}
	return nil
}

// track wraps a record's callback to remember the transaction's first failure.
func (t *producerTxn) track(cb func(*Record, error)) func(*Record, error) {
	return func(r *Record, err error) {
		if err != nil {
			t.mu.Lock()
			if t.failed == nil {
				t.failed = fmt.Errorf("partition %s: %w", semantics.PartitionString(r.Topic, r.Partition), err)
			}
			t.mu.Unlock()
		}
		if cb != nil {
			cb(r, err)
		}
	}
}

// addPartition adds partition tp to the open transaction before its first batch
// of the transaction is sent (called by the partition's sender). While another
// partition's request is in flight it waits, and the partitions that waited go in
// one request after it (as Kafka's producer sends AddPartitionsToTxn).
func (t *producerTxn) addPartition(ctx context.Context, tp TopicPartition) error {
	for {
		t.mu.Lock()
		if t.parts[tp] {
			t.mu.Unlock()
			return nil
		}
		if t.adding {
			if t.pending == nil {
				t.pending = map[TopicPartition]bool{}
			}
			t.pending[tp] = true
			wait := t.added
			t.mu.Unlock()
			select {
			case <-wait:
				continue // added with the others, or this sender sends the next request
			case <-ctx.Done():
				return fmt.Errorf("add partition %s to transaction %q: %w", semantics.PartitionString(tp.Topic, tp.Partition), t.id, ctx.Err())
			}
		}
		parts := []TopicPartition{tp}
		for p := range t.pending {
			if p != tp {
				parts = append(parts, p)
			}
		}
		clear(t.pending)
		t.adding, t.added = true, make(chan struct{})
		t.mu.Unlock()

		req := t.ident()
		req.Partitions = parts
		var resp semantics.TxnResponse
		err := t.request(ctx, semantics.TxnAddPartitions, req, &resp)
		t.mu.Lock()
		if err == nil && t.parts != nil {
			for _, p := range parts {
				t.parts[p] = true
			}
		}
		t.adding = false
		close(t.added)
		t.mu.Unlock()
		if err != nil {
			// The others that waited send their own request and learn their answer.
			return fmt.Errorf("add partition %s to transaction %q: %w", semantics.PartitionString(tp.Topic, tp.Partition), t.id, err)
		}
		return nil
	}
}

// CommitTransaction sends every record of the open transaction, waits for them,
// and commits it: its records become visible to read-committed consumers and its
// offsets (SendOffsetsToTransaction) are stored in their groups. When a record
// failed, it commits nothing and fails with ErrTransactionFailed: abort the
// transaction. ErrProducerFenced means another producer took the transactional
// id: close this one.
func (p *Producer) CommitTransaction(ctx context.Context) error {
	return p.endTxn(ctx, true)
}

// AbortTransaction sends what the open transaction buffered, waits for it, and
// aborts the transaction: read-committed consumers never see its records, and its
// offsets are dropped.
func (p *Producer) AbortTransaction(ctx context.Context) error {
	return p.endTxn(ctx, false)
}

func (p *Producer) endTxn(ctx context.Context, commit bool) error {
	t := p.txn
	if t == nil {
		return ErrNotTransactional
	}
	what := "abort"
	if commit {
		what = "commit"
	}
	if err := t.checkOpen(); err != nil {
		return err
	}
	if err := p.Flush(ctx); err != nil {
		return fmt.Errorf("%s transaction %q: send its records: %w", what, t.id, err)
	}
	t.mu.Lock()
	failed, empty := t.failed, len(t.parts) == 0 && len(t.groups) == 0
	t.mu.Unlock()
	if commit && failed != nil {
		return fmt.Errorf("%w: commit transaction %q: %w", ErrTransactionFailed, t.id, failed)
	}
	if !empty {
		req := t.ident()
		req.Commit = commit
		var resp semantics.TxnResponse
		if err := t.request(ctx, semantics.TxnEnd, req, &resp); err != nil {
			return fmt.Errorf("%s transaction %q: %w", what, t.id, err)
		}
	}
	t.mu.Lock()
	t.open, t.parts, t.groups, t.failed = false, nil, nil, nil
	t.mu.Unlock()
	return nil
}

// TxnMember is a consumer group member as SendOffsetsToTransaction names it: a
// *Consumer in a group, or a GroupMemberID.
type TxnMember interface {
	// GroupID is the member's group.
	GroupID() string
	// Generation is the member's group generation and member id.
	Generation() (int32, string)
}

// GroupMemberID names a group member by its group, generation and member id
// (Kafka's ConsumerGroupMetadata).
type GroupMemberID struct {
	Group        string
	GenerationID int32
	MemberID     string
}

// GroupID returns m.Group.
func (m GroupMemberID) GroupID() string { return m.Group }

// Generation returns m's generation and member id.
func (m GroupMemberID) Generation() (int32, string) { return m.GenerationID, m.MemberID }

// GroupID returns the consumer's group, "" without one.
func (c *Consumer) GroupID() string { return c.cfg.group.id }

var (
	_ TxnMember = (*Consumer)(nil)
	_ TxnMember = GroupMemberID{}
)

// SendOffsetsToTransaction adds member's group offsets to the open transaction
// (Kafka's sendOffsetsToTransaction): they are stored in the group when the
// transaction commits, and dropped when it aborts. Offsets are the next records
// to read, as Consumer.CommitOffsets takes them. The coordinator checks the
// member's generation, as a commit's: ErrIllegalGeneration after a rebalance.
func (p *Producer) SendOffsetsToTransaction(ctx context.Context, member TxnMember, offsets map[TopicPartition]OffsetAndMetadata) error {
	t := p.txn
	if t == nil {
		return ErrNotTransactional
	}
	if err := t.checkOpen(); err != nil {
		return err
	}
	group := member.GroupID()
	if group == "" {
		return fmt.Errorf("send offsets to transaction %q: %w", t.id, ErrNotInGroup)
	}
	gen, memberID := member.Generation()
	t.mu.Lock()
	added := t.groups[group]
	t.mu.Unlock()
	if !added {
		req := t.ident()
		req.Group = group
		var resp semantics.TxnResponse
		if err := t.request(ctx, semantics.TxnAddGroup, req, &resp); err != nil {
			return fmt.Errorf("add group %q to transaction %q: %w", group, t.id, err)
		}
		t.mu.Lock()
		if t.groups != nil {
			t.groups[group] = true
		}
		t.mu.Unlock()
	}
	req := t.ident()
	req.Group, req.Generation, req.Member = group, gen, memberID
	for tp, o := range offsets {
		req.Offsets = append(req.Offsets, semantics.TxnOffsetEntry{Topic: tp.Topic, Partition: tp.Partition, Offset: o.Offset, Metadata: o.Metadata})
	}
	var resp semantics.TxnResponse
	if err := t.request(ctx, semantics.TxnCommitOffsets, req, &resp); err != nil {
		return fmt.Errorf("send offsets of group %q to transaction %q: %w", group, t.id, err)
	}
	return nil
}

// validateTxn checks the transactional settings.
func (c producerConfig) validateTxn() error {
	if c.txnID == "" {
		return nil
	}
	switch {
	case !c.idempotent || c.acks != AcksAll:
		return semantics.Errorf(semantics.ErrInvalidConfig,
			"transactional id %q needs idempotence and acks all: drop Idempotent(false) and the acks setting", c.txnID)
	case c.txnTimeout <= 0 || c.txnTimeout > semantics.MaxTxnTimeout:
		return semantics.Errorf(semantics.ErrInvalidConfig,
			"transaction timeout %v: use more than 0 and at most %v", c.txnTimeout, semantics.MaxTxnTimeout)
	}
	return nil
}

// joinTxn adds the partition to its producer's open transaction, if it has not
// joined it yet: called by the partition's sender before it builds a batch.
func (pp *partProducer) joinTxn() error {
	t := pp.p.txn
	if t == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(pp.p.ctx, pp.p.c.cfg.reqTimeout)
	defer cancel()
	return t.addPartition(ctx, TopicPartition{Topic: pp.topic, Partition: pp.partition})
}
