package offsets_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// step is one write of a generation test: a Commit at gen, or a Reset.
type step struct {
	gen   int32
	reset bool
	offs  map[int32]int64 // partition of topic "t" → offset
	// wantErr is the error kind the write must fail with; wantWritten the partitions
	// it must still have written.
	wantErr     error
	wantWritten []int32
}

func TestCommitGenerationFencing(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	ctx := qxdtest.Context(t, 30*time.Second)

	type want struct {
		off int64
		gen int32
	}
	cases := []struct {
		name  string
		steps []step
		want  map[int32]want
	}{
		{
			name: "older generation refused",
			steps: []step{
				{gen: 5, offs: map[int32]int64{0: 10}},
				{gen: 4, offs: map[int32]int64{0: 20}, wantErr: semantics.ErrIllegalGeneration},
			},
			want: map[int32]want{0: {10, 5}},
		},
		{
			name: "equal generation overwrites",
			steps: []step{
				{gen: 5, offs: map[int32]int64{0: 10}},
				{gen: 5, offs: map[int32]int64{0: 20}},
			},
			want: map[int32]want{0: {20, 5}},
		},
		{
			name: "newer generation overwrites",
			steps: []step{
				{gen: 5, offs: map[int32]int64{0: 10}},
				{gen: 6, offs: map[int32]int64{0: 8}},
			},
			want: map[int32]want{0: {8, 6}},
		},
		{
			name: "generation 0 over nothing",
			steps: []step{
				{gen: 0, offs: map[int32]int64{0: 1}},
			},
			want: map[int32]want{0: {1, 0}},
		},
		{
			name: "reset does not block generation 1",
			steps: []step{
				{gen: 7, offs: map[int32]int64{0: 10, 1: 11}},
				{reset: true, offs: map[int32]int64{0: 3}},
				{gen: 1, offs: map[int32]int64{0: 4}},
			},
			want: map[int32]want{0: {4, 1}, 1: {11, 7}},
		},
		{
			name: "reset of a new partition",
			steps: []step{
				{reset: true, offs: map[int32]int64{2: 30}},
			},
			want: map[int32]want{2: {30, -1}},
		},
		{
			name: "no-generation commit is unconditional",
			steps: []step{
				{gen: 7, offs: map[int32]int64{0: 10}},
				{gen: offsets.NoGeneration, offs: map[int32]int64{0: 2}},
				{gen: 0, offs: map[int32]int64{0: 3}},
			},
			want: map[int32]want{0: {3, 0}},
		},
		{
			name: "latest and earliest clear at the same generation",
			steps: []step{
				{gen: 5, offs: map[int32]int64{0: 10, 1: 11}},
				{gen: 5, offs: map[int32]int64{0: offsets.Latest, 1: offsets.Earliest}},
			},
			want: map[int32]want{0: {-1, 5}, 1: {-2, 5}},
		},
		{
			name: "older generation cannot clear",
			steps: []step{
				{gen: 5, offs: map[int32]int64{0: 10}},
				{gen: 4, offs: map[int32]int64{0: offsets.Earliest}, wantErr: semantics.ErrIllegalGeneration},
			},
			want: map[int32]want{0: {10, 5}},
		},
		{
			name: "a clear fences older generations",
			steps: []step{
				{gen: 5, offs: map[int32]int64{0: offsets.Latest}},
				{gen: 4, offs: map[int32]int64{0: 3}, wantErr: semantics.ErrIllegalGeneration},
				{gen: 6, offs: map[int32]int64{0: 7}},
			},
			want: map[int32]want{0: {7, 6}},
		},
		{
			name: "partial failure writes the rest and says so",
			steps: []step{
				{gen: 5, offs: map[int32]int64{0: 10}},
				{gen: 4, offs: map[int32]int64{0: 20, 1: 21, 2: 22}, wantErr: semantics.ErrIllegalGeneration, wantWritten: []int32{1, 2}},
			},
			want: map[int32]want{0: {10, 5}, 1: {21, 4}, 2: {22, 4}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			group := "fence " + tc.name
			for i, s := range tc.steps {
				before, err := st.List(ctx, group)
				if err != nil {
					t.Fatalf("step %d: list: %v", i, err)
				}
				if s.reset {
					in := map[semantics.TopicPartition]int64{}
					for p, o := range s.offs {
						in[tp("t", p)] = o
					}
					err = st.Reset(ctx, group, in)
				} else {
					in := map[semantics.TopicPartition]offsets.Commit{}
					for p, o := range s.offs {
						in[tp("t", p)] = offsets.Commit{Offset: o, Metadata: fmt.Sprint("step ", i)}
					}
					err = st.Commit(ctx, group, s.gen, fmt.Sprint("member-", s.gen), in)
				}
				if !errors.Is(err, s.wantErr) {
					t.Fatalf("step %d: err = %v, want %v", i, err, s.wantErr)
				}
				if err == nil {
					continue
				}
				checkWriteError(t, err, s, group)
				after, err := st.List(ctx, group)
				if err != nil {
					t.Fatalf("step %d: list: %v", i, err)
				}
				for p := range s.offs {
					if slices.Contains(s.wantWritten, p) {
						continue
					}
					if b, a := before[tp("t", p)], after[tp("t", p)]; b != a {
						t.Errorf("step %d: refused partition t/%d changed from %+v to %+v", i, p, b, a)
					}
				}
			}
			got, err := st.List(ctx, group)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			gotW := map[int32]want{}
			for k, c := range got {
				gotW[k.Partition] = want{c.Offset, c.Generation}
				if c.Generation == offsets.NoGeneration && c.Member != "" {
					t.Errorf("t/%d: reset commit has member %q, want none", k.Partition, c.Member)
				}
			}
			if !maps.Equal(gotW, tc.want) {
				t.Errorf("stored (offset, generation) = %v, want %v", gotW, tc.want)
			}
		})
	}
}

// checkWriteError checks that a refused commit names the partition, both generations
// and what was written.
func checkWriteError(t *testing.T, err error, s step, group string) {
	t.Helper()
	var werr *offsets.WriteError
	if !errors.As(err, &werr) {
		t.Fatalf("err %T %v is not a *offsets.WriteError", err, err)
	}
	if werr.Group != group || werr.Op != "commit" {
		t.Errorf("WriteError group %q op %q, want %q commit", werr.Group, werr.Op, group)
	}
	var written []int32
	for _, k := range werr.Written {
		written = append(written, k.Partition)
	}
	if !slices.Equal(written, s.wantWritten) {
		t.Errorf("written = %v, want %v", written, s.wantWritten)
	}
	msg := err.Error()
	for p := range s.offs {
		if !slices.Contains(s.wantWritten, p) && !strings.Contains(msg, fmt.Sprintf("t/%d", p)) {
			t.Errorf("error %q does not name partition t/%d", msg, p)
		}
	}
	if !strings.Contains(msg, fmt.Sprintf("generation %d", s.gen)) || !strings.Contains(msg, "generation 5") {
		t.Errorf("error %q does not name both generations", msg)
	}
}

// Writers race on the same keys with ever newer generations: every stored value has
// a generation at least as new as the one before, and the newest generation's commit
// is the one left.
func TestConcurrentCommitsKeepNewestGeneration(t *testing.T) {
	t.Parallel()
	st, js := openStore(t)
	ctx := qxdtest.Context(t, 60*time.Second)
	const (
		group   = "race/group"
		writers = 6
		rounds  = 15
	)
	keys := []semantics.TopicPartition{tp("hot", 0), tp("hot", 1)}

	kv, err := js.KeyValue(ctx, semantics.OffsetsBucket)
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	w, err := kv.Watch(ctx, semantics.GroupOffsetsFilter(group), jetstream.UpdatesOnly())
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()

	var next atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for range writers {
		wg.Go(func() {
			for range rounds {
				gen := next.Add(1)
				in := map[semantics.TopicPartition]offsets.Commit{}
				for _, k := range keys {
					in[k] = offsets.Commit{Offset: int64(gen) * 10}
				}
				if err := st.Commit(ctx, group, gen, fmt.Sprint("m", gen), in); err != nil && !errors.Is(err, semantics.ErrIllegalGeneration) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("commit failed other than by fencing: %v", err)
	}

	newest := next.Load()
	got, err := st.Fetch(ctx, group, keys)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	for _, k := range keys {
		c := got[k]
		if c.Generation != newest || c.Offset != int64(newest)*10 {
			t.Errorf("%s: stored generation %d offset %d, want the newest generation %d with offset %d",
				k, c.Generation, c.Offset, newest, newest*10)
		}
	}

	// Every write the watcher saw, in order: generations never go back.
	last := map[string]int32{}
	seen := map[string]bool{}
	for len(seen) < len(keys) {
		select {
		case e := <-w.Updates():
			if e == nil {
				continue
			}
			var c offsets.Committed
			if err := json.Unmarshal(e.Value(), &c); err != nil {
				t.Fatalf("watched value %q: %v", e.Value(), err)
			}
			if c.Generation < last[e.Key()] {
				t.Errorf("%s: generation went back from %d to %d", e.Key(), last[e.Key()], c.Generation)
			}
			last[e.Key()] = c.Generation
			_, _, p, _ := semantics.ParseOffsetKey(e.Key())
			if e.Revision() == got[tp("hot", p)].Revision {
				seen[e.Key()] = true
			}
		case <-ctx.Done():
			t.Fatalf("watcher did not see the final writes: %v", ctx.Err())
		}
	}
}

// Commits honour a cancelled context.
func TestCommitCancelled(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := st.Commit(ctx, "g", 1, "m", map[semantics.TopicPartition]offsets.Commit{tp("t", 0): {Offset: 1}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// A coordinator that lost its role but has not noticed (its node paused, a
// member's commit queued to it) stores with an older epoch than its successor:
// its commit, of the same generation and member, must not take the partition's
// offset back over the successor's, and is answered NOT_COORDINATOR. Its own
// later commits, and the successor's over the older epoch's, are stored; a
// Store without an epoch (an admin reset, a transaction's offsets) writes over
// any.
func TestCommitFencedByCoordinatorEpoch(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	const group = "epochs"
	part := tp("orders", 0)
	old, cur := st.WithEpoch(5), st.WithEpoch(9)
	commit := func(s *offsets.Store, off int64) error {
		return s.Commit(ctx, group, 3, "m1", map[semantics.TopicPartition]offsets.Commit{part: {Offset: off}})
	}
	want := func(off int64, epoch uint64) {
		t.Helper()
		got, err := st.Fetch(ctx, group, []semantics.TopicPartition{part})
		if err != nil {
			t.Fatal(err)
		}
		if c := got[part]; c.Offset != off || c.Epoch != epoch {
			t.Fatalf("stored commit: offset %d epoch %d; want offset %d epoch %d", c.Offset, c.Epoch, off, epoch)
		}
	}
	if err := commit(old, 40); err != nil {
		t.Fatalf("the older coordinator's commit before its successor's: %v", err)
	}
	if err := commit(cur, 100); err != nil {
		t.Fatalf("the successor's commit over the older epoch's: %v", err)
	}
	want(100, 9)
	err := commit(old, 50)
	if !errors.Is(err, semantics.ErrNotCoordinator) {
		t.Fatalf("the deposed coordinator's commit of offset 50 over its successor's 100: %v; want NOT_COORDINATOR", err)
	}
	want(100, 9)
	if err := commit(cur, 120); err != nil {
		t.Fatalf("the successor's next commit: %v", err)
	}
	want(120, 9)
	if err := commit(st, 130); err != nil {
		t.Fatalf("a commit without an epoch: %v", err)
	}
	want(130, 0)
}

// TestEmptyGroupCommitFencedByCoordinatorEpoch: a commit of a group without
// members (generation -1) through a deposed coordinator must not write over the
// commit stored through its successor, as a member's commit must not; one of a
// Store without an epoch still writes over any.
func TestEmptyGroupCommitFencedByCoordinatorEpoch(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	const group = "empty-epochs"
	part := tp("orders", 0)
	old, cur := st.WithEpoch(5), st.WithEpoch(9)
	commit := func(s *offsets.Store, gen int32, off int64) error {
		member := ""
		if gen >= 0 {
			member = "m1"
		}
		return s.Commit(ctx, group, gen, member, map[semantics.TopicPartition]offsets.Commit{part: {Offset: off}})
	}
	want := func(off int64, epoch uint64) {
		t.Helper()
		got, err := st.Fetch(ctx, group, []semantics.TopicPartition{part})
		if err != nil {
			t.Fatal(err)
		}
		if c := got[part]; c.Offset != off || c.Epoch != epoch {
			t.Fatalf("stored commit: offset %d epoch %d; want offset %d epoch %d", c.Offset, c.Epoch, off, epoch)
		}
	}
	if err := commit(old, offsets.NoGeneration, 40); err != nil {
		t.Fatalf("the older coordinator's commit before its successor's: %v", err)
	}
	want(40, 5)
	if err := commit(cur, offsets.NoGeneration, 100); err != nil {
		t.Fatalf("the successor's commit over the older epoch's: %v", err)
	}
	want(100, 9)
	err := commit(old, offsets.NoGeneration, 50)
	if !errors.Is(err, semantics.ErrNotCoordinator) {
		t.Fatalf("the deposed coordinator's commit of offset 50 over its successor's 100: %v; want NOT_COORDINATOR", err)
	}
	want(100, 9)
	// A member's commit of a newer generation, then the group empty again:
	// generation -1 still writes over it through the current coordinator.
	if err := commit(cur, 4, 110); err != nil {
		t.Fatal(err)
	}
	if err := commit(cur, offsets.NoGeneration, 120); err != nil {
		t.Fatalf("the successor's commit of the empty group over generation 4's: %v", err)
	}
	want(120, 9)
	if err := commit(st, offsets.NoGeneration, 130); err != nil {
		t.Fatalf("a commit without an epoch: %v", err)
	}
	want(130, 0)
}

// TestResetFencedByCoordinatorEpoch: a reset through a deposed coordinator (a
// Store WithEpoch older than its successor's) must not set back the offset a
// member committed through the successor after the group got members again; it
// is refused with NOT_COORDINATOR. A reset through the current coordinator
// writes over it and carries its epoch; one of a Store without an epoch (a
// transaction's offsets, a tool) writes over any, as before.
func TestResetFencedByCoordinatorEpoch(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	const group = "reset-epochs"
	part := tp("orders", 0)
	old, cur := st.WithEpoch(5), st.WithEpoch(9)
	reset := func(s *offsets.Store, off int64) error {
		return s.Reset(ctx, group, map[semantics.TopicPartition]int64{part: off})
	}
	want := func(off int64, epoch uint64) {
		t.Helper()
		got, err := st.Fetch(ctx, group, []semantics.TopicPartition{part})
		if err != nil {
			t.Fatal(err)
		}
		if c := got[part]; c.Offset != off || c.Epoch != epoch {
			t.Fatalf("stored commit: offset %d epoch %d; want offset %d epoch %d", c.Offset, c.Epoch, off, epoch)
		}
	}
	if err := reset(old, 10); err != nil {
		t.Fatalf("the older coordinator's reset before its successor took over: %v", err)
	}
	want(10, 5)
	if err := cur.Commit(ctx, group, 1, "m1", map[semantics.TopicPartition]offsets.Commit{part: {Offset: 100}}); err != nil {
		t.Fatalf("a member's commit through the successor: %v", err)
	}
	if err := reset(old, 0); !errors.Is(err, semantics.ErrNotCoordinator) {
		t.Fatalf("the deposed coordinator's reset to 0 over the member's commit of 100: %v; want NOT_COORDINATOR", err)
	}
	want(100, 9)
	if err := reset(cur, 20); err != nil {
		t.Fatalf("the current coordinator's reset: %v", err)
	}
	want(20, 9)
	if err := reset(st, 30); err != nil {
		t.Fatalf("a reset without an epoch: %v", err)
	}
	want(30, 0)
}
