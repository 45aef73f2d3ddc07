package qxd

import (
	"context"
	"testing"

	"github.com/qxd-io/qxd/internal/partition"
)

// A read from the high watermark starts right after the last batch the high
// watermark was read from, not after the stream's last sequence: the two come
// from different answers, and when the stream's state is the newer one (a
// replica's answer behind the leader's), starting after its last sequence would
// skip the batches between.
func TestFindOffsetAtHighWatermarkFollowsTheLastBatch(t *testing.T) {
	offs := partition.Offsets{
		StreamState:   partition.StreamState{FirstSeq: 1, LastSeq: 14, Msgs: 14},
		LogStart:      0,
		HighWatermark: 356,
		FirstBatchSeq: 1,
		LastBatchSeq:  13,
		LastBatchBase: 300,
	}
	seq, err := findOffset(context.Background(), nil, offs, 356)
	if err != nil {
		t.Fatal(err)
	}
	if seq != 14 {
		t.Fatalf("a read from offset 356 (the high watermark) starts at stream sequence %d, want 14", seq)
	}
}
