package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
)

// The Kafka listener's transactions (kafka.TxnBackend): the coordinator's
// requests go to the node's transaction service, which answers NOT_COORDINATOR on a
// node that does not coordinate (the client asks FindCoordinator again); the
// partitions' last stable offsets and producers come from their writers, on the
// node leading each partition.

var _ kafka.TxnBackend = (*kafkaBackend)(nil)

// TxnCoordinator implements kafka.TxnBackend: the node coordinating groups, which
// runs the transaction coordinator too (txnService).
func (b *kafkaBackend) TxnCoordinator(ctx context.Context, id string) (kafka.Broker, error) {
	if id == "" {
		return kafka.Broker{}, semantics.Errorf(semantics.ErrInvalidRequest, "transactional id is empty")
	}
	return b.Coordinator(ctx, id)
}

// InitTxnProducerID implements kafka.TxnBackend.
func (b *kafkaBackend) InitTxnProducerID(ctx context.Context, id string, timeout time.Duration, pid int64, epoch int16) (int64, int16, error) {
	return b.n.Transactions().InitProducerID(ctx, id, timeout, pid, epoch)
}

// AddPartitionsToTxn implements kafka.TxnBackend.
func (b *kafkaBackend) AddPartitionsToTxn(ctx context.Context, id string, pid int64, epoch int16, parts []semantics.TopicPartition) error {
	return b.n.Transactions().AddPartitions(ctx, id, pid, epoch, parts)
}

// AddOffsetsToTxn implements kafka.TxnBackend.
func (b *kafkaBackend) AddOffsetsToTxn(ctx context.Context, id string, pid int64, epoch int16, group string) error {
	return b.n.Transactions().AddGroup(ctx, id, pid, epoch, group)
}

// TxnOffsetCommit implements kafka.TxnBackend.
func (b *kafkaBackend) TxnOffsetCommit(ctx context.Context, id string, pid int64, epoch int16, group string, generation int32, member string, offs []kafka.TxnOffset) error {
	out := make([]TxnOffset, len(offs))
	for i, o := range offs {
		out[i] = TxnOffset(o)
	}
	return b.n.Transactions().CommitOffsets(ctx, id, pid, epoch, group, generation, member, out)
}

// AddProducedPartitions implements kafka.TxnBackend: on the coordinating node
// the call is local; elsewhere it is sent to the coordinator's NATS door, as
// the SDK's producers send theirs.
func (b *kafkaBackend) AddProducedPartitions(ctx context.Context, id string, pid int64, epoch int16, parts []semantics.TopicPartition) error {
	err := b.n.Transactions().AddPartitions(ctx, id, pid, epoch, parts)
	if !errors.Is(err, semantics.ErrNotCoordinator) {
		return err
	}
	body, err := json.Marshal(semantics.TxnRequest{TransactionalID: id, ProducerID: pid, Epoch: epoch, Partitions: parts})
	if err != nil {
		return err
	}
	m, err := b.nc.RequestWithContext(ctx, semantics.TxnSubject(semantics.TxnAddPartitions, id), body)
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return semantics.Errorf(semantics.ErrNotCoordinator, "add partitions to transaction %q: no node coordinates transactions now; retry", id)
	}
	if err != nil {
		return fmt.Errorf("add partitions to transaction %q: %w", id, err)
	}
	var resp semantics.TxnResponse
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return fmt.Errorf("add partitions to transaction %q: the coordinator answered malformed JSON: %w", id, err)
	}
	return resp.Failure()
}

// EndTxn implements kafka.TxnBackend.
func (b *kafkaBackend) EndTxn(ctx context.Context, id string, pid int64, epoch int16, commit, bump bool) (int64, int16, error) {
	if bump {
		return b.n.Transactions().EndTxnBumping(ctx, id, pid, epoch, commit)
	}
	return pid, epoch, b.n.Transactions().EndTxn(ctx, id, pid, epoch, commit)
}

// DescribeTxn implements kafka.TxnBackend.
func (b *kafkaBackend) DescribeTxn(_ context.Context, id string) (semantics.TxnDescription, error) {
	return b.n.Transactions().Describe(id)
}

// PendingTxnOffsets implements kafka.TxnBackend.
func (b *kafkaBackend) PendingTxnOffsets(_ context.Context, group string) ([]semantics.TopicPartition, error) {
	return b.n.Transactions().PendingOffsets(group)
}

// ListTxns implements kafka.TxnBackend.
func (b *kafkaBackend) ListTxns(context.Context) ([]semantics.TxnDescription, error) {
	return b.n.Transactions().List()
}

// Producers implements kafka.TxnBackend.
func (b *kafkaBackend) Producers(ctx context.Context, topic string, p int32) ([]kafka.Producer, error) {
	if _, err := b.partition(ctx, topic, p); err != nil {
		return nil, err
	}
	ps, err := b.n.Writers().Producers(topic, p)
	if err != nil {
		return nil, err
	}
	out := make([]kafka.Producer, len(ps))
	for i, s := range ps {
		out[i] = kafka.Producer{ProducerID: s.ProducerID, Epoch: s.Epoch, LastSequence: s.LastSequence,
			LastTimestamp: s.LastTimestamp, TxnStartOffset: s.TxnStartOffset}
	}
	return out, nil
}

// StableOffset implements kafka.TxnBackend: the partition's last stable offset,
// from its writer on this node (NOT_LEADER_OR_FOLLOWER elsewhere).
func (b *kafkaBackend) StableOffset(ctx context.Context, topic string, p int32) (int64, error) {
	_, offs, err := b.offsets(ctx, topic, p)
	if err != nil {
		return -1, err
	}
	lso, _, err := b.n.Writers().Stable(topic, p, offs.HighWatermark, offs.LogStart)
	if err != nil {
		return -1, err
	}
	return min(lso, offs.HighWatermark), nil
}
