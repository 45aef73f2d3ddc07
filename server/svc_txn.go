package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

// Transactions is the transaction service of a node: Kafka's transaction
// coordinator requests, answered on the node that coordinates groups (the leader
// of the qxd_groups bucket's stream; transactions are stored in qxd_txns). On the others every method fails with NOT_COORDINATOR
// (semantics.ErrNotCoordinator), and the service follows leadership, so the same
// value serves when this node takes over.
type Transactions struct {
	s *txnService
}

func (t *Transactions) current() (*txnCoordinator, error) {
	if t.s != nil {
		if c := t.s.role.current(); c != nil {
			return c, nil
		}
	}
	return nil, semantics.Errorf(semantics.ErrNotCoordinator,
		"this node does not coordinate transactions now: the node leading the %s bucket does; retry there", semantics.GroupsBucket)
}

// Coordinating reports whether this node coordinates transactions now.
func (t *Transactions) Coordinating() bool {
	_, err := t.current()
	return err == nil
}

// InitProducerID gives transactional id its producer id and the next epoch, fencing
// the producers that had it (an ongoing transaction of theirs is aborted first).
// timeout is the transaction timeout, at most semantics.MaxTxnTimeout. pid and
// epoch are the producer's current ones when it has them (Kafka's KIP-360), else -1.
func (t *Transactions) InitProducerID(ctx context.Context, id string, timeout time.Duration, pid int64, epoch int16) (int64, int16, error) {
	c, err := t.current()
	if err != nil {
		return -1, -1, err
	}
	return c.InitProducerID(ctx, id, timeout, pid, epoch)
}

// AddPartitions adds partitions to the transaction of id (starting one).
func (t *Transactions) AddPartitions(ctx context.Context, id string, pid int64, epoch int16, parts []semantics.TopicPartition) error {
	c, err := t.current()
	if err != nil {
		return err
	}
	return c.AddPartitions(ctx, id, pid, epoch, parts)
}

// AddGroup adds a consumer group to the transaction of id (Kafka's AddOffsetsToTxn).
func (t *Transactions) AddGroup(ctx context.Context, id string, pid int64, epoch int16, group string) error {
	c, err := t.current()
	if err != nil {
		return err
	}
	return c.AddGroup(ctx, id, pid, epoch, group)
}

// CommitOffsets records group offsets in the transaction of id (Kafka's
// TxnOffsetCommit): stored in the group only if the transaction commits.
func (t *Transactions) CommitOffsets(ctx context.Context, id string, pid int64, epoch int16, group string, generation int32, member string, offs []TxnOffset) error {
	c, err := t.current()
	if err != nil {
		return err
	}
	return c.CommitOffsets(ctx, id, pid, epoch, group, generation, member, offs)
}

// EndTxn commits or aborts the transaction of id and returns once every marker and
// offset of it is stored.
func (t *Transactions) EndTxn(ctx context.Context, id string, pid int64, epoch int16, commit bool) error {
	c, err := t.current()
	if err != nil {
		return err
	}
	return c.EndTxn(ctx, id, pid, epoch, commit)
}

// EndTxnBumping commits or aborts the transaction of id as Kafka's EndTxn v5
// does (KIP-890 part 2): the epoch is bumped by the end, and the producer id and
// epoch of the producer's next transaction are returned.
func (t *Transactions) EndTxnBumping(ctx context.Context, id string, pid int64, epoch int16, commit bool) (int64, int16, error) {
	c, err := t.current()
	if err != nil {
		return -1, -1, err
	}
	return c.EndTxnBumping(ctx, id, pid, epoch, commit)
}

// Describe returns transactional id's state; TRANSACTIONAL_ID_NOT_FOUND when the
// coordinator does not know it.
func (t *Transactions) Describe(id string) (semantics.TxnDescription, error) {
	c, err := t.current()
	if err != nil {
		return semantics.TxnDescription{TransactionalID: id}, err
	}
	return c.Describe(id)
}

// List returns every transactional id the coordinator knows.
func (t *Transactions) List() ([]semantics.TxnDescription, error) {
	c, err := t.current()
	if err != nil {
		return nil, err
	}
	return c.List(), nil
}

// PendingOffsets returns the partitions of group whose offsets a transaction
// holds that has not completed (Kafka's pending transactional offset commits:
// OffsetFetch with require_stable answers them UNSTABLE_OFFSET_COMMIT).
func (t *Transactions) PendingOffsets(group string) ([]semantics.TopicPartition, error) {
	c, err := t.current()
	if err != nil {
		return nil, err
	}
	return c.PendingOffsets(group), nil
}

// localWriter returns the running writer of partition p of topic on this node, or
// NOT_LEADER_OR_FOLLOWER.
func (s *Writers) localWriter(topic string, p int32) (*writer, error) {
	if err := s.check(topic, p); err != nil {
		return nil, err
	}
	w := s.m.lookup(semantics.StreamName(topic, p))
	if w == nil {
		return nil, semantics.Errorf(semantics.ErrNotLeader,
			"partition %s: this node does not lead it: ask the node that leads it (the cluster's metadata names it)",
			semantics.PartitionString(topic, p))
	}
	return w, nil
}

// Stable returns partition p's last stable offset — the first offset of its
// earliest open transaction, else the high watermark as its writer knows it —
// and the aborted transactions that end at or after from and begin before it. Only
// the node that leads the partition knows them: elsewhere NOT_LEADER_OR_FOLLOWER.
// Index entries that end below logStart are forgotten.
func (s *Writers) Stable(topic string, p int32, from, logStart int64) (int64, []semantics.AbortedTxn, error) {
	w, err := s.localWriter(topic, p)
	if err != nil {
		return -1, nil, err
	}
	lso, aborted := w.stable(from, logStart)
	return lso, aborted, nil
}

// Producers returns partition p's active producers; NOT_LEADER_OR_FOLLOWER on a
// node that does not lead it.
func (s *Writers) Producers(topic string, p int32) ([]ProducerState, error) {
	w, err := s.localWriter(topic, p)
	if err != nil {
		return nil, err
	}
	return w.producerStates(), nil
}

// markerWait bounds one marker request to another node's writer.
const markerWait = 5 * time.Second

// EndTxn writes a transaction marker to partition p through its writer: in
// process when this node leads the partition, else on semantics.MarkerSubject.
func (s *Writers) EndTxn(ctx context.Context, topic string, p int32, req semantics.MarkerRequest) error {
	if err := s.check(topic, p); err != nil {
		return err
	}
	if w := s.m.lookup(semantics.StreamName(topic, p)); w != nil {
		done := make(chan semantics.ProduceReply, 1)
		w.endTxn(req, answer{done: func(r semantics.ProduceReply) { done <- r }})
		select {
		case r := <-done:
			return r.Err()
		case <-ctx.Done():
			return fmt.Errorf("partition %s: write marker: %w", semantics.PartitionString(topic, p), ctx.Err())
		}
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, markerWait)
	defer cancel()
	m, err := s.m.env.reads.RequestWithContext(rctx, semantics.MarkerSubject(topic, p), b)
	if err != nil {
		return semantics.Errorf(semantics.ErrNotLeader, "partition %s: write marker: %v; retry", semantics.PartitionString(topic, p), err)
	}
	r, err := semantics.ParseProduceReply(m.Data)
	if err != nil {
		return fmt.Errorf("partition %s: write marker: %w", semantics.PartitionString(topic, p), err)
	}
	return r.Err()
}

var _ markerWriter = (*Writers)(nil)
