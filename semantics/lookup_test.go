package semantics_test

import (
	"context"
	"testing"

	"github.com/qxd-io/qxd/semantics"
)

// logSource is a partition log held in memory: sequence → batch header. Missing
// sequences are gaps, as retention and compaction leave them.
type logSource map[uint64]semantics.BatchHeader

func (l logSource) BatchAtOrAfter(_ context.Context, seq uint64) (uint64, semantics.BatchHeader, error) {
	var last uint64
	for s := range l {
		last = max(last, s)
	}
	for s := max(seq, 1); s <= last; s++ {
		if h, ok := l[s]; ok {
			return s, h, nil
		}
	}
	return 0, semantics.BatchHeader{}, semantics.ErrNoBatch
}

func TestFindOffset(t *testing.T) {
	t.Parallel()
	// seq 1: offsets 0-4, seq 2: 5-9, seq 3 removed (10-14), seq 4: 15, seq 5: 16-20,
	// seq 6 removed (21), seq 7: 22-29.
	log := logSource{
		1: {BaseOffset: 0, LastOffsetDelta: 4, MaxTimestamp: 100},
		2: {BaseOffset: 5, LastOffsetDelta: 4, MaxTimestamp: 200},
		4: {BaseOffset: 15, LastOffsetDelta: 0, MaxTimestamp: 400},
		5: {BaseOffset: 16, LastOffsetDelta: 4, MaxTimestamp: 500},
		7: {BaseOffset: 22, LastOffsetDelta: 7, MaxTimestamp: 700},
	}
	cases := []struct {
		offset int64
		seq    uint64
		found  bool
	}{
		{0, 1, true}, {3, 1, true}, {5, 2, true}, {9, 2, true},
		{12, 2, true}, // removed: the batch before it; the consumer skips forward
		{15, 4, true}, {16, 5, true}, {21, 5, true}, {22, 7, true}, {29, 7, true}, {100, 7, true},
	}
	for _, tc := range cases {
		seq, found, err := semantics.FindOffset(context.Background(), log, 1, 7, tc.offset)
		if err != nil || seq != tc.seq || found != tc.found {
			t.Errorf("FindOffset(%d) = %d %v %v, want %d %v", tc.offset, seq, found, err, tc.seq, tc.found)
		}
	}
	if _, found, _ := semantics.FindOffset(context.Background(), logSource{3: {BaseOffset: 10}}, 3, 3, 5); found {
		t.Error("an offset before the first batch was found")
	}
	tcs := []struct {
		ts    int64
		seq   uint64
		found bool
	}{{50, 1, true}, {100, 1, true}, {101, 2, true}, {300, 4, true}, {700, 7, true}, {701, 0, false}}
	for _, tc := range tcs {
		seq, found, err := semantics.FindTimestamp(context.Background(), log, 1, 7, tc.ts)
		if err != nil || seq != tc.seq || found != tc.found {
			t.Errorf("FindTimestamp(%d) = %d %v %v, want %d %v", tc.ts, seq, found, err, tc.seq, tc.found)
		}
	}
}

func TestFindLeaderEpoch(t *testing.T) {
	t.Parallel()
	// Batches stamped -1 (before epochs were stamped), then epochs 3, 3, 5, 8, with
	// sequence 4 removed.
	log := logSource{
		1: {BaseOffset: 0, LeaderEpoch: -1},
		2: {BaseOffset: 5, LeaderEpoch: 3},
		3: {BaseOffset: 10, LeaderEpoch: 3},
		5: {BaseOffset: 20, LeaderEpoch: 5},
		6: {BaseOffset: 25, LeaderEpoch: 8},
	}
	for _, tc := range []struct {
		epoch       int32
		below       uint64
		found       bool
		above       uint64
		next        bool
		description string
	}{
		{-2, 0, false, 1, true, "before every batch"},
		{2, 1, true, 2, true, "between the unstamped batches and epoch 3"},
		{3, 3, true, 5, true, "epoch 3 ends where epoch 5 begins"},
		{4, 3, true, 5, true, "an epoch that wrote nothing: the one before it"},
		{5, 5, true, 6, true, "epoch 5"},
		{8, 6, true, 0, false, "the last epoch: nothing after it"},
		{9, 6, true, 0, false, "past the last"},
	} {
		below, found, above, next, err := semantics.FindLeaderEpoch(context.Background(), log, 1, 6, tc.epoch)
		if err != nil || below != tc.below || found != tc.found || above != tc.above || next != tc.next {
			t.Errorf("%s: FindLeaderEpoch(%d) = %d %v, %d %v, %v; want %d %v, %d %v", tc.description, tc.epoch,
				below, found, above, next, err, tc.below, tc.found, tc.above, tc.next)
		}
	}
}
