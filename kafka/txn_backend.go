package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// TxnBackend is what the listener needs for Kafka's transactions, from a Backend
// that also has them: the transaction coordinator's requests, the partitions'
// last stable offsets and aborted transactions, and their producers. A Backend
// without it answers the transaction APIs with INVALID_REQUEST, and read_committed
// reads up to the high watermark.
type TxnBackend interface {
	// TxnCoordinator returns the node that coordinates transactional id
	// (FindCoordinator with key type 1).
	TxnCoordinator(ctx context.Context, id string) (Broker, error)
	// InitTxnProducerID gives transactional id its producer id and the next epoch,
	// fencing the producers that had it; pid and epoch are the producer's current
	// ones (KIP-360), or -1.
	InitTxnProducerID(ctx context.Context, id string, timeout time.Duration, pid int64, epoch int16) (int64, int16, error)
	// AddPartitionsToTxn adds partitions to the transaction of id.
	AddPartitionsToTxn(ctx context.Context, id string, pid int64, epoch int16, parts []semantics.TopicPartition) error
	// AddOffsetsToTxn adds a consumer group to the transaction of id.
	AddOffsetsToTxn(ctx context.Context, id string, pid int64, epoch int16, group string) error
	// TxnOffsetCommit records offsets of group in the transaction of id, stored in
	// the group when it commits.
	TxnOffsetCommit(ctx context.Context, id string, pid int64, epoch int16, group string, generation int32, member string, offsets []TxnOffset) error
	// AddProducedPartitions adds partitions to the transaction of id from the
	// node a transactional produce came to (Produce v12, KIP-890 part 2): on
	// whichever node coordinates transactions.
	AddProducedPartitions(ctx context.Context, id string, pid int64, epoch int16, parts []semantics.TopicPartition) error
	// EndTxn commits or aborts the transaction of id and returns the producer id
	// and epoch of the producer's next transaction. With bump (EndTxn v5, KIP-890
	// part 2) the end bumps the epoch, a retry at the ended epoch is answered as
	// done and an abort with no transaction is taken; without, they are pid and
	// epoch unchanged.
	EndTxn(ctx context.Context, id string, pid int64, epoch int16, commit, bump bool) (int64, int16, error)
	// DescribeTxn returns the state of transactional id.
	DescribeTxn(ctx context.Context, id string) (semantics.TxnDescription, error)
	// PendingTxnOffsets returns the partitions of group whose offsets a
	// transaction holds that has not completed (OffsetFetch's require_stable).
	PendingTxnOffsets(ctx context.Context, group string) ([]semantics.TopicPartition, error)
	// ListTxns returns every transactional id the coordinator knows.
	ListTxns(ctx context.Context) ([]semantics.TxnDescription, error)
	// Producers returns the active producers of a partition (its leader knows them).
	Producers(ctx context.Context, topic string, p int32) ([]Producer, error)
	// ReadIsolated is Backend.Read with the partition's last stable offset and,
	// when committed (read_committed), batches ending at it and the aborted
	// transactions among them.
	ReadIsolated(ctx context.Context, topic string, p int32, offset int64, maxBytes int, committed bool) (IsolatedRead, error)
	// StableOffset returns a partition's last stable offset.
	StableOffset(ctx context.Context, topic string, p int32) (int64, error)
}

// TxnOffset is one offset of a TxnOffsetCommit.
type TxnOffset struct {
	Topic     string
	Partition int32
	Offset    int64
	Metadata  string
	// TopicID, when set (TxnOffsetCommit v6 names topics by id), is the id of
	// the topic the offset was committed to, as the topic record holds it
	// (base64, unpadded URL encoding): the offset is not stored if the topic
	// was made again since.
	TopicID string
}

// Producer is one active producer of a partition (DescribeProducers).
type Producer struct {
	ProducerID    int64
	Epoch         int16
	LastSequence  int32
	LastTimestamp int64
	// TxnStartOffset is the first offset of its open transaction, -1 when none.
	TxnStartOffset int64
}

// IsolatedRead is the answer to a ReadIsolated.
type IsolatedRead struct {
	ReadResult
	LastStableOffset int64
	Aborted          []semantics.AbortedTxn
}

// txns returns the backend's transactions, or an error saying there are none.
func (c *conn) txns() (TxnBackend, error) {
	if tb, ok := c.l.cfg.Backend.(TxnBackend); ok {
		return tb, nil
	}
	return nil, semantics.Errorf(semantics.ErrInvalidRequest, "this node has no transaction coordinator")
}

// allowTxn is nil when the connection may use transactions: a produce right on
// some topic, as for an idempotent producer id (qxd has no transactional-id ACLs).
func (c *conn) allowTxn(id string) error {
	if c.grant != nil && len(c.grant.Produce) == 0 {
		return semantics.Errorf(semantics.ErrClusterAuthorizationFailed,
			"user %q has no produce right on any topic, so no transactional id (%q)", c.user, id)
	}
	return nil
}

// readIsolated reads a partition for Fetch with the isolation level asked for.
func (c *conn) readIsolated(ctx context.Context, isolation int8, topic string, p int32, offset int64, maxBytes int) (IsolatedRead, error) {
	tb, err := c.txns()
	if err != nil {
		r, err := c.b.Read(ctx, topic, p, offset, maxBytes)
		return IsolatedRead{ReadResult: r, LastStableOffset: r.HighWatermark}, err
	}
	if err := c.allowTopic(semantics.OpConsume, topic); err != nil {
		return IsolatedRead{ReadResult: ReadResult{LogStart: -1, HighWatermark: -1}, LastStableOffset: -1}, err
	}
	return tb.ReadIsolated(ctx, topic, p, offset, maxBytes, isolation == 1)
}

// stableOffset is a partition's last stable offset for ListOffsets read_committed.
func (c *conn) stableOffset(ctx context.Context, topic string, p int32, hw int64) (int64, error) {
	tb, err := c.txns()
	if err != nil {
		return hw, nil
	}
	return tb.StableOffset(ctx, topic, p)
}

// txnCoordinator finds the transaction coordinator for FindCoordinator.
func (c *conn) txnCoordinator(ctx context.Context, id string) (Broker, error) {
	if err := c.allowTxn(id); err != nil {
		return Broker{}, err
	}
	tb, err := c.txns()
	if err != nil {
		return Broker{}, err
	}
	return tb.TxnCoordinator(ctx, id)
}

// initTxnProducer answers an InitProducerId with a transactional id.
func (c *conn) initTxnProducer(ctx context.Context, req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) *kmsg.InitProducerIDResponse {
	id := *req.TransactionalID
	err := c.allowTxn(id)
	if err == nil {
		var tb TxnBackend
		if tb, err = c.txns(); err == nil {
			pid, epoch := int64(-1), int16(-1)
			if req.Version >= 3 {
				pid, epoch = req.ProducerID, req.ProducerEpoch
			}
			timeout := time.Duration(req.TransactionTimeoutMillis) * time.Millisecond
			resp.ProducerID, resp.ProducerEpoch, err = tb.InitTxnProducerID(ctx, id, timeout, pid, epoch)
		}
	}
	resp.ErrorCode = txnCode(req.Version, 4, err)
	if err != nil {
		resp.ProducerID, resp.ProducerEpoch = -1, -1
	}
	return resp
}
