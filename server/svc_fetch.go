package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// DefaultFetchMaxBytes bounds a fetch that gives no MaxBytes.
const DefaultFetchMaxBytes = 1 << 20

// Fetcher is the fetch service of a node: it reads a partition's stored record
// batches from an offset, as Kafka's Fetch does, in process. Batches come back as
// they are stored (the writer set their base offsets), so a Kafka listener passes
// them through unchanged. Reads go to the partition stream's leader, the same view
// the log start and high watermark are read from.
type Fetcher struct {
	nc          *nats.Conn // JetStream API requests
	topics      topicStore
	checkpoints checkpointStore
	obs         *observers // the services' Observers
	writers     *Writers   // the last stable offset and aborted transactions
	damage      damageStore
	log         *slog.Logger
	node        string // this node's name
}

// FetchRequest asks for partition Partition of Topic from Offset.
type FetchRequest struct {
	Topic     string
	Partition int32
	Offset    int64
	// MaxBytes bounds the size of the batches returned; the first batch is returned
	// whatever its size, as Kafka does, so a reader always makes progress. 0 means
	// DefaultFetchMaxBytes.
	MaxBytes int
	// ReadCommitted is Kafka's read_committed isolation: the batches end at the last
	// stable offset, and the result lists the aborted transactions among them.
	// Only the node leading the partition knows those: elsewhere the fetch fails
	// with NOT_LEADER_OR_FOLLOWER. Default: read_uncommitted, up to the high
	// watermark.
	ReadCommitted bool
}

// FetchResult is a fetch's answer.
type FetchResult struct {
	// LogStartOffset is the first readable offset; HighWatermark the offset the
	// next record will get.
	LogStartOffset int64
	HighWatermark  int64
	// Batches are stored RecordBatches, in offset order, from the one holding the
	// requested offset on: its records below that offset are the reader's to skip,
	// as with Kafka. None when the offset is the high watermark. Each has passed its
	// CRC check.
	Batches [][]byte
	// LastStableOffset is the offset below which every transaction is decided:
	// read-committed reads stop there. A fetch on a node that does not lead the
	// partition, with read_uncommitted, gives the high watermark.
	LastStableOffset int64
	// Aborted are the aborted transactions among the batches (read-committed
	// only): a reader drops their producers' records from FirstOffset until it
	// passes the abort marker at LastOffset, as Kafka clients do.
	Aborted []semantics.AbortedTxn
}

// Fetch reads partition req.Partition of req.Topic from req.Offset. An offset below
// the log start or above the high watermark is OFFSET_OUT_OF_RANGE; a topic or
// partition that does not exist UNKNOWN_TOPIC_OR_PARTITION. A stored batch that
// fails its CRC check ends the batches returned before it; the fetch that starts
// at it fails with CORRUPT_MESSAGE. A batch whose copy on the leader fails its
// CRC check is read from another replica's intact copy instead, when one has it;
// either way the damage is recorded (describe and cluster info show it).
func (f *Fetcher) Fetch(ctx context.Context, req FetchRequest) (FetchResult, error) {
	if err := semantics.ValidateTopicName(req.Topic); err != nil {
		return FetchResult{}, err
	}
	t, err := f.topics.getTopic(ctx, req.Topic)
	if err != nil {
		return FetchResult{}, err
	}
	if t.State != semantics.TopicReady {
		return FetchResult{}, semantics.Errorf(semantics.ErrTopicNotReady, "topic %q is %s: finish that first", t.Name, t.State)
	}
	p := req.Partition
	if p < 0 || p >= t.Config.Partitions {
		return FetchResult{}, semantics.Errorf(semantics.ErrUnknownTopic,
			"topic %q has partitions 0 to %d: partition %d does not exist", t.Name, t.Config.Partitions-1, p)
	}
	part := semantics.PartitionString(t.Name, p)
	r := partition.NewReader(f.nc, t.Name, p, false)
	// ReadOffsets counts every empty partition's high watermark from a
	// checkpoint as Behind; only one a replica answered (the bucket's leader
	// not answering in time) may really be.
	replicaCheckpoint := false
	o, err := r.ReadOffsets(ctx, func(ctx context.Context) (int64, error) {
		ck, fromLeader, err := f.checkpoints.readCheckpoint(ctx, t.ID, p)
		replicaCheckpoint = !fromLeader
		return ck.Next, err
	})
	if err != nil {
		return FetchResult{}, fmt.Errorf("fetch %s: read its offsets: %w", part, err)
	}
	res := FetchResult{LogStartOffset: o.LogStart, HighWatermark: o.HighWatermark, LastStableOffset: o.HighWatermark}
	end := o.HighWatermark // batches end before it
	if f.writers != nil {
		lso, aborted, serr := f.writers.Stable(t.Name, p, req.Offset, o.LogStart)
		switch {
		case serr == nil:
			res.LastStableOffset = min(lso, o.HighWatermark)
			if req.ReadCommitted {
				res.Aborted, end = aborted, res.LastStableOffset
			}
		case req.ReadCommitted:
			return res, fmt.Errorf("fetch %s read-committed: %w", part, serr)
		}
	}
	behind := len(o.Replicas) > 0 && o.Leader == "" || replicaCheckpoint && o.LastSeq > 0
	if req.Offset > o.HighWatermark && behind {
		// Not known to be out of range (partition.Offsets.Behind): a reader told
		// so would go back to its reset policy's start.
		return res, semantics.Errorf(semantics.ErrNotLeader,
			"fetch %s: offset %d is past the high watermark %d read from a replica that may be behind the partition's leader: fetch again",
			part, req.Offset, o.HighWatermark)
	}
	if req.Offset < o.LogStart || req.Offset > o.HighWatermark {
		return res, semantics.Errorf(semantics.ErrOffsetOutOfRange,
			"fetch %s: offset %d is out of range: the partition holds offsets %d (the log start) to %d (the high watermark)",
			part, req.Offset, o.LogStart, o.HighWatermark)
	}
	if req.Offset >= end || o.Msgs == 0 {
		return res, nil
	}
	seq, found, err := semantics.FindOffset(ctx, r, o.FirstSeq, o.LastSeq, req.Offset)
	if err != nil {
		return res, fmt.Errorf("fetch %s: find the batch of offset %d: %w", part, req.Offset, err)
	}
	if !found {
		seq = o.FirstSeq
	}
	limit := req.MaxBytes
	if limit <= 0 {
		limit = DefaultFetchMaxBytes
	}
	size, records := 0, int64(0)
	defer func() {
		if len(res.Batches) > 0 {
			f.obs.fetched(t.Name, p, records, size)
		}
	}()
	expect := req.Offset // where the next batch should start, at the latest
	for seq <= o.LastSeq {
		m, err := r.Get(ctx, seq)
		if errors.Is(err, semantics.ErrNoBatch) && t.Config.Compact {
			break
		}
		if err != nil && !errors.Is(err, semantics.ErrNoBatch) {
			return res, fmt.Errorf("fetch %s: read sequence %d: %w", part, seq, err)
		}
		if (err != nil || m.Seq > seq) && !t.Config.Compact {
			// Batches are removed from the head only: the leader's copy lacks seq
			// (and, with nothing after it, the batches up to the last).
			if m, err = f.missing(ctx, r, t, o.StreamState, seq, expect, m); err != nil {
				if len(res.Batches) > 0 {
					break // the next fetch starts at it, and fails
				}
				return res, fmt.Errorf("fetch %s: %w", part, err)
			}
			if m.Seq == 0 {
				break // the head moved past it
			}
		}
		if m.Seq > o.LastSeq || len(res.Batches) > 0 && size+len(m.Data) > limit {
			break
		}
		if h, err := semantics.PeekBatchHeader(m.Data); err == nil && h.BaseOffset >= end {
			break // at the last stable offset
		}
		h, err := semantics.ParseBatchHeader(m.Data)
		if err != nil {
			if m.Data, err = f.fromReplica(ctx, r, t, o.StreamState, m, err); err == nil {
				h, err = semantics.ParseBatchHeader(m.Data)
			}
		}
		if err != nil {
			if len(res.Batches) > 0 {
				break // the next fetch starts at it, and fails
			}
			return res, fmt.Errorf("fetch %s: %w", part, err)
		}
		res.Batches = append(res.Batches, m.Data)
		expect = h.LastOffset() + 1
		size += len(m.Data)
		records += int64(h.NumRecords)
		seq = m.Seq + 1
	}
	return res, nil
}

// fromReplica is the answer to batch m of partition r, whose copy on the leader
// (st.Leader) fails its checks with derr: the same batch as another replica
// stores it, when one holds an intact copy. It records the damage either way.
// The error, when no replica holds an intact copy, is an ErrCorruptMessage naming
// the partition, the offsets, the stream sequence and the node.
func (f *Fetcher) fromReplica(ctx context.Context, r *partition.Reader, t semantics.TopicMeta, st partition.StreamState, m partition.Msg, derr error) ([]byte, error) {
	node := cmp.Or(st.Leader, f.node)
	from, to := int64(-1), int64(-1)
	if h, err := semantics.PeekBatchHeader(m.Data); err == nil && h.NumRecords > 0 {
		from, to = h.BaseOffset, h.LastOffset()
	}
	good, gerr := r.GetIntact(ctx, m.Seq, len(st.Replicas))
	d := semantics.BatchDamage{Kind: semantics.DamageCorrupt, FromSeq: m.Seq, ToSeq: m.Seq, FromOffset: from, ToOffset: to, Node: node,
		Detail: fmt.Sprintf("the batch at stream sequence %d on node %s fails its checks: %v", m.Seq, node, derr)}
	if f.damage != nil {
		if err := damageFound(ctx, f.log, f.damage, t, r.P, d, gerr == nil); err != nil {
			f.log.Warn("damage not recorded", "topic", t.Name, "partition", r.P, "node", node, "err", err)
		}
	}
	if gerr == nil {
		return good.Data, nil
	}
	what := offsetsText(from, to)
	return nil, semantics.Errorf(semantics.ErrCorruptMessage,
		"partition %s: %s, stored at stream sequence %d, are corrupt on node %s (%v) and no other replica returned an intact copy (%v): restore the partition or rebuild the replica",
		semantics.PartitionString(t.Name, r.P), what, m.Seq, node, derr, gerr)
}

// missing is the answer to a read of stream sequence seq that the leader's copy
// of partition r answered with the later batch next (none, Seq 0, when it holds
// nothing from seq on): the batch at seq as another replica stores it, when one
// holds an intact copy; next when retention or a trim removed seq meanwhile.
// expect is the offset the batch at seq starts at or before. It records the damage either way. The error, when no
// replica holds it, is an ErrCorruptMessage naming the partition, the offsets and
// the node.
func (f *Fetcher) missing(ctx context.Context, r *partition.Reader, t semantics.TopicMeta, st partition.StreamState, seq uint64, expect int64, next partition.Msg) (partition.Msg, error) {
	good, gerr := r.GetIntact(ctx, seq, len(st.Replicas))
	if gerr != nil {
		if now, err := r.StreamInfo(ctx); err == nil && now.FirstSeq > seq {
			return next, nil
		}
	}
	node := cmp.Or(st.Leader, f.node)
	to := int64(-1)
	if h, err := semantics.PeekBatchHeader(next.Data); err == nil && next.Seq > 0 {
		to = h.BaseOffset - 1
	}
	from := expect
	if gerr == nil {
		if h, err := semantics.PeekBatchHeader(good.Data); err == nil {
			from, to = h.BaseOffset, h.LastOffset()
		}
	}
	d := semantics.BatchDamage{Kind: semantics.DamageUnreadable, FromSeq: seq, ToSeq: seq, FromOffset: from, ToOffset: to, Node: node,
		Detail: fmt.Sprintf("stream sequence %d is missing from the copy on node %s", seq, node)}
	if f.damage != nil {
		if err := damageFound(ctx, f.log, f.damage, t, r.P, d, gerr == nil); err != nil {
			f.log.Warn("damage not recorded", "topic", t.Name, "partition", r.P, "node", node, "err", err)
		}
	}
	if gerr == nil {
		return good, nil
	}
	return partition.Msg{}, semantics.Errorf(semantics.ErrCorruptMessage,
		"partition %s: %s, stored at stream sequence %d, are missing from the log stored on node %s, and no other replica returned them (%v): its stored data is damaged; rebuild the replica or restore the partition",
		semantics.PartitionString(t.Name, r.P), offsetsText(from, to), seq, node, gerr)
}
