package semantics

import (
	"errors"
	"testing"
	"time"
)

// TestControlBatch builds Kafka's commit and abort markers and reads them back: a
// valid batch (CRC, length) with the transactional and control bits, one record,
// no sequence; DecodeRecords hands out nothing for it.
func TestControlBatch(t *testing.T) {
	t.Parallel()
	for _, commit := range []bool{true, false} {
		b := BuildControlBatch(42, 7, commit, 3, time.UnixMilli(1700000000000))
		h, m, err := ParseControlBatch(b)
		if err != nil {
			t.Fatalf("commit %v: %v", commit, err)
		}
		if !h.Control() || !h.Transactional() || h.ProducerID != 42 || h.ProducerEpoch != 7 || h.BaseSequence != -1 || h.NumRecords != 1 {
			t.Fatalf("commit %v: header %+v", commit, h)
		}
		if m.Commit != commit || m.CoordinatorEpoch != 3 {
			t.Fatalf("commit %v: marker %+v", commit, m)
		}
		if !IsControlBatch(b) {
			t.Fatal("IsControlBatch: false for a marker")
		}
		SetBaseOffset(b, 9)
		recs, err := DecodeRecords(nil, b, "t", 0)
		if err != nil || len(recs) != 0 {
			t.Fatalf("DecodeRecords of a marker: %d records, %v; want none", len(recs), err)
		}
	}
	var bb BatchBuilder
	bb.Append(&Record{Value: []byte("v")})
	data, err := bb.Build(nil, ProducerInfo{ID: 1, BaseSequence: 0, Transactional: true}, CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseBatchHeader(data)
	if err != nil || !h.Transactional() || h.Control() || IsControlBatch(data) {
		t.Fatalf("transactional batch: %+v, %v", h, err)
	}
	if _, _, err := ParseControlBatch(data); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("ParseControlBatch of a data batch: %v, want INVALID_RECORD", err)
	}
}
