package partition

import (
	"context"
	"errors"

	"github.com/qxd-io/qxd/semantics"
)

// TimeMatch is the record OffsetForTime found: its offset and timestamp (Unix ms),
// and the sequence of the stored batch holding it.
type TimeMatch struct {
	Offset    int64
	Timestamp int64
	Seq       uint64
}

// OffsetForTime returns the first record at or after the log start whose
// timestamp is ts (Unix ms) or later, as Kafka's ListOffsets by timestamp
// answers; found is false when no such record is stored. The search starts at
// the batch holding the log start: a trim (DeleteRecords) leaves the batches
// below it stored, and their records are not to be read. A batch whose max
// timestamp reaches ts may hold no such record at or after the log start (its
// records below the log start, a transaction marker): the next batch answers.
func (r *Reader) OffsetForTime(ctx context.Context, offs Offsets, ts int64) (m TimeMatch, found bool, err error) {
	if offs.Msgs == 0 {
		return TimeMatch{}, false, nil
	}
	first := offs.FirstSeq
	if offs.FirstBatchSeq > first {
		first = offs.FirstBatchSeq
	}
	seq, found, err := semantics.FindTimestamp(ctx, r, first, offs.LastSeq, ts)
	if err != nil || !found {
		return TimeMatch{}, false, err
	}
	var recs []semantics.Record
	for seq <= offs.LastSeq {
		msg, err := r.Get(ctx, seq)
		if err != nil {
			return TimeMatch{}, false, err
		}
		if recs, err = semantics.DecodeRecords(recs[:0], msg.Data, r.Topic, r.P); err != nil {
			return TimeMatch{}, false, err
		}
		for _, rec := range recs {
			if rec.Offset >= offs.LogStart && rec.Timestamp.UnixMilli() >= ts {
				return TimeMatch{Offset: rec.Offset, Timestamp: rec.Timestamp.UnixMilli(), Seq: msg.Seq}, true, nil
			}
		}
		next, _, err := r.BatchAtOrAfter(ctx, msg.Seq+1)
		if errors.Is(err, semantics.ErrNoBatch) {
			return TimeMatch{}, false, nil
		}
		if err != nil {
			return TimeMatch{}, false, err
		}
		seq = next
	}
	return TimeMatch{}, false, nil
}
