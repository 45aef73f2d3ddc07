package semantics

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
)

// Offsets and stream sequences. A partition's stream holds one record batch per
// message, in offset order, so base offsets grow with stream sequences. Retention
// removes messages from the front and compaction from the middle, so sequences can
// have gaps; offsets have gaps only where records were removed.

// ErrNoBatch is returned by a BatchSource when no batch is stored at or after a
// sequence.
var ErrNoBatch = errors.New("no batch at or after sequence")

// BatchSource reads the headers of one partition's stored batches.
type BatchSource interface {
	// BatchAtOrAfter returns the sequence and header of the first batch stored at
	// sequence seq or later, or ErrNoBatch.
	BatchAtOrAfter(ctx context.Context, seq uint64) (uint64, BatchHeader, error)
}

// PeekBatchHeader reads the fixed fields of a stored batch without checking its CRC
// or touching its records: what a lookup needs. Stored batches were checked by the
// partition writer.
func PeekBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < BatchHeaderSize {
		return BatchHeader{}, fmt.Errorf("record batch: %d bytes is shorter than the %d-byte header", len(b), BatchHeaderSize)
	}
	if b[16] != 2 {
		return BatchHeader{}, fmt.Errorf("record batch: magic %d, want 2", b[16])
	}
	be := binary.BigEndian
	return BatchHeader{
		BaseOffset:      int64(be.Uint64(b[0:])),
		Length:          int32(be.Uint32(b[8:])),
		LeaderEpoch:     int32(be.Uint32(b[12:])),
		Attributes:      int16(be.Uint16(b[21:])),
		LastOffsetDelta: int32(be.Uint32(b[23:])),
		FirstTimestamp:  int64(be.Uint64(b[27:])),
		MaxTimestamp:    int64(be.Uint64(b[35:])),
		ProducerID:      int64(be.Uint64(b[43:])),
		ProducerEpoch:   int16(be.Uint16(b[51:])),
		BaseSequence:    int32(be.Uint32(b[53:])),
		NumRecords:      int32(be.Uint32(b[57:])),
	}, nil
}

// FindOffset returns the sequence of the batch that holds offset: the stored batch
// with the greatest base offset not above it, searching sequences first..last by
// binary search (O(log n) reads). found is false when every stored batch starts
// after offset.
func FindOffset(ctx context.Context, src BatchSource, first, last uint64, offset int64) (seq uint64, found bool, err error) {
	return search(ctx, src, first, last, func(h BatchHeader) bool { return h.BaseOffset <= offset })
}

// FindLeaderEpoch returns the sequence of the last batch stamped with a leader
// epoch at or below epoch, and of the first one stamped above it (next is false
// when there is none), for Kafka's OffsetForLeaderEpoch: epochs only grow along a
// partition's log.
func FindLeaderEpoch(ctx context.Context, src BatchSource, first, last uint64, epoch int32) (atOrBelow uint64, found bool, above uint64, next bool, err error) {
	atOrBelow, found, err = search(ctx, src, first, last, func(h BatchHeader) bool { return h.LeaderEpoch <= epoch })
	if err != nil {
		return 0, false, 0, false, err
	}
	from := first
	if found {
		from = atOrBelow + 1
	}
	if from > last {
		return atOrBelow, found, 0, false, nil
	}
	s, _, err := src.BatchAtOrAfter(ctx, from)
	if errors.Is(err, ErrNoBatch) || err == nil && s > last {
		return atOrBelow, found, 0, false, nil
	}
	if err != nil {
		return 0, false, 0, false, err
	}
	return atOrBelow, found, s, true, nil
}

// FindTimestamp returns the sequence of the first batch whose max timestamp (ms) is
// at or after ts, as Kafka's time index answers ListOffsets. found is false when no
// batch is that recent.
func FindTimestamp(ctx context.Context, src BatchSource, first, last uint64, ts int64) (seq uint64, found bool, err error) {
	// The last batch with max timestamp < ts; the answer is the next stored batch.
	before, ok, err := search(ctx, src, first, last, func(h BatchHeader) bool { return h.MaxTimestamp < ts })
	if err != nil {
		return 0, false, err
	}
	from := first
	if ok {
		from = before + 1
	}
	if from > last {
		return 0, false, nil
	}
	s, _, err := src.BatchAtOrAfter(ctx, from)
	if errors.Is(err, ErrNoBatch) || err == nil && s > last {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return s, true, nil
}

// search returns the greatest stored sequence in [first,last] whose batch satisfies
// below, assuming below is true for a prefix of the batches and false after it.
func search(ctx context.Context, src BatchSource, first, last uint64, below func(BatchHeader) bool) (uint64, bool, error) {
	var ans uint64
	found := false
	lo, hi := first, last
	for lo <= hi && hi != 0 {
		mid := lo + (hi-lo)/2
		s, h, err := src.BatchAtOrAfter(ctx, mid)
		if errors.Is(err, ErrNoBatch) || err == nil && s > hi {
			// Nothing stored in [mid, hi].
			if mid == 0 {
				break
			}
			hi = mid - 1
			continue
		}
		if err != nil {
			return 0, false, err
		}
		if below(h) {
			ans, found = s, true
			lo = s + 1
		} else {
			if mid == 0 {
				break
			}
			hi = mid - 1
		}
	}
	return ans, found, nil
}
