package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
)

// A partition's largest record timestamp (Kafka's ListOffsets MAX_TIMESTAMP,
// KIP-734) is kept by its writer: every acknowledged batch's header folds into a
// TimestampMark (the first batch with the largest MaxTimestamp), which the
// writer's checkpoints carry, so a writer taking over knows it from the latest
// checkpoint and the batches it replays after it. An answer reads that one
// batch to find the first of its records with that timestamp.
//
// Retention, a trim (DeleteRecords) or compaction may remove the batch, or the
// records of it at and after the log start may no longer hold that timestamp;
// a writer loaded from a checkpoint written before marks were kept does not know
// the mark at all. Then the answer scans the stored batches from the log start
// (one batched read per kafkaReadBatchMax batches, each batch's header, and the
// first batch's records when the log start falls inside it: O(stored bytes),
// read once) and hands what it found to the writer, which keeps folding acks
// into it; the next answer reads one batch again.

// maxScanRounds bounds how often a scan catches up with appends acknowledged
// while it read, before it answers without handing its result to the writer.
const maxScanRounds = 5

// maxTimestamp returns the writer's mark and whether it knows it, with the
// sequence of the last acknowledged append.
func (w *writer) maxTimestamp() (semantics.TimestampMark, bool, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxTS, w.maxKnown, w.acked.Seq
}

// scannedMax replaces the writer's mark by one a scan of the log up to sequence
// upTo found, if no append was acknowledged after upTo since; it reports whether
// it did. Acks after it fold into the mark as usual. The mark of the batches
// sent is the scan's with those still awaiting their ack: what the writer had
// folded before knew only part of the log, or a batch that is gone.
func (w *writer) scannedMax(m semantics.TimestampMark, upTo uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.acked.Seq > upTo {
		return false
	}
	w.maxTS, w.maxKnown, w.dirty = m, true, true
	w.sentMax = m
	for _, pa := range w.pending {
		w.sentMax = w.sentMax.Fold(pa.max)
	}
	return true
}

// MaxTimestamp implements kafka.Backend: the offset and timestamp of partition p's record with the
// largest timestamp at or after its log start (the first such record when
// several have it); -1, -1 when none is stored. Only the node leading the
// partition knows it: NOT_LEADER_OR_FOLLOWER elsewhere. Transaction markers do
// not count: they are no records of the application.
func (b *kafkaBackend) MaxTimestamp(ctx context.Context, topic string, p int32) (offset, ts int64, epoch int32, err error) {
	r, offs, err := b.offsets(ctx, topic, p)
	if err != nil {
		return -1, -1, -1, err
	}
	w, err := b.n.Writers().localWriter(topic, p)
	if err != nil {
		return -1, -1, -1, err
	}
	part := semantics.PartitionString(topic, p)
	// The mark's batch is read from the stream's leader: a replica a little
	// behind may not have it yet.
	leader := partition.NewReader(b.nc, topic, p, false)
	if offs.Msgs == 0 || offs.LogStart >= offs.HighWatermark {
		return -1, -1, -1, nil
	}
	mark, known, _ := w.maxTimestamp()
	if known {
		if mark.Timestamp < 0 {
			return -1, -1, -1, nil
		}
		if mark.Seq >= offs.FirstSeq {
			off, ts, epoch, found, err := recordAt(ctx, leader, mark, offs.LogStart)
			if err != nil {
				return -1, -1, -1, fmt.Errorf("max timestamp of %s: read sequence %d: %w", part, mark.Seq, err)
			}
			if found {
				return off, ts, epoch, nil
			}
		}
	}
	// The mark's batch is gone, or its records below the log start: scan what remains.
	from := offs.FirstSeq
	found := semantics.NoTimestampMark
	upTo := offs.LastSeq
	for round := 0; ; round++ {
		m, err := b.scanMax(ctx, r, from, upTo, offs.LogStart)
		if err != nil {
			return -1, -1, -1, fmt.Errorf("max timestamp of %s: scan sequences %d to %d: %w", part, from, upTo, err)
		}
		found = found.Fold(m)
		if w.scannedMax(found, upTo) || round == maxScanRounds {
			break
		}
		_, _, acked := w.maxTimestamp()
		from, upTo = upTo+1, acked
	}
	if found.Timestamp < 0 {
		return -1, -1, -1, nil
	}
	off, ts, epoch, ok, err := recordAt(ctx, leader, found, offs.LogStart)
	if err != nil || !ok {
		return -1, -1, -1, errors.Join(err, semantics.Errorf(semantics.ErrUnavailable,
			"max timestamp of %s: the batch at sequence %d went while it was read; retry", part, found.Seq))
	}
	return off, ts, epoch, nil
}

// recordAt reads the batch m names and returns its first record at or after
// logStart whose timestamp is m's, and the batch's leader epoch (-1 when it has
// none); found is false when the batch is gone or no such record is left.
func recordAt(ctx context.Context, r *partition.Reader, m semantics.TimestampMark, logStart int64) (offset, ts int64, epoch int32, found bool, err error) {
	msg, err := r.Get(ctx, m.Seq)
	if errors.Is(err, semantics.ErrNoBatch) {
		return -1, -1, -1, false, nil
	}
	if err != nil {
		return -1, -1, -1, false, err
	}
	if msg.Seq != m.Seq {
		return -1, -1, -1, false, nil
	}
	h, err := semantics.PeekBatchHeader(msg.Data)
	if err != nil {
		return -1, -1, -1, false, err
	}
	recs, err := semantics.DecodeRecords(nil, msg.Data, r.Topic, r.P)
	if err != nil {
		return -1, -1, -1, false, err
	}
	for _, rec := range recs {
		if rec.Offset >= logStart && rec.Timestamp.UnixMilli() == m.Timestamp {
			return rec.Offset, m.Timestamp, max(h.LeaderEpoch, -1), true, nil
		}
	}
	return -1, -1, -1, false, nil
}

// scanMax reads the batches stored from sequence from to upTo and returns the
// mark of the one with the largest timestamp among its records at or after
// logStart. Batched direct reads may be answered by a replica a little behind
// the leader; what such a replica does not have yet, the leader answers.
func (b *kafkaBackend) scanMax(ctx context.Context, r *partition.Reader, from, upTo uint64, logStart int64) (semantics.TimestampMark, error) {
	found := semantics.NoTimestampMark
	add := func(seq uint64, data []byte) error {
		h, err := semantics.PeekBatchHeader(data)
		if err != nil {
			return fmt.Errorf("sequence %d: %w", seq, err)
		}
		if h.Control() || h.LastOffset() < logStart {
			return nil
		}
		mark := semantics.TimestampMark{Timestamp: h.MaxTimestamp, BaseOffset: h.BaseOffset, Seq: seq}
		if h.BaseOffset < logStart {
			// The log start falls inside the batch: only its records from there count.
			recs, err := semantics.DecodeRecords(nil, data, r.Topic, r.P)
			if err != nil {
				return fmt.Errorf("sequence %d: %w", seq, err)
			}
			mark.Timestamp = -1
			for _, rec := range recs {
				if rec.Offset >= logStart {
					mark.Timestamp = max(mark.Timestamp, rec.Timestamp.UnixMilli())
				}
			}
			if mark.Timestamp < 0 {
				return nil
			}
		}
		found = found.Fold(mark)
		return nil
	}
	seq := from
	for seq <= upTo {
		msgs, err := b.directBatch(ctx, r, directBatchRequest{Seq: seq,
			Batch: kafkaReadBatchMax, MaxBytes: 8 << 20, UpToSeq: upTo})
		if err != nil {
			return found, err
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			if err := add(m.seq, m.data); err != nil {
				return found, err
			}
		}
		seq = msgs[len(msgs)-1].seq + 1
	}
	leader := partition.NewReader(b.nc, r.Topic, r.P, false)
	for seq <= upTo {
		m, err := leader.Get(ctx, seq)
		if errors.Is(err, semantics.ErrNoBatch) {
			break
		}
		if err != nil {
			return found, err
		}
		if m.Seq > upTo {
			break
		}
		if err := add(m.Seq, m.Data); err != nil {
			return found, err
		}
		seq = m.Seq + 1
	}
	return found, nil
}
