package offsets_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// openStore starts a node and opens the offsets store on it.
func openStore(t *testing.T) (*offsets.Store, jetstream.JetStream) {
	t.Helper()
	node := qxdtest.StartNode(t)
	nc, err := nats.Connect(node.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	st, err := offsets.Open(qxdtest.Context(t, 10*time.Second), js, 1)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return st, js
}

func tp(topic string, p int32) semantics.TopicPartition {
	return semantics.TopicPartition{Topic: topic, Partition: p}
}

// stored reduces commits to what tests compare: offset, metadata, generation, member.
func stored(m map[semantics.TopicPartition]offsets.Committed) map[semantics.TopicPartition]offsets.Committed {
	out := make(map[semantics.TopicPartition]offsets.Committed, len(m))
	for k, c := range m {
		out[k] = offsets.Committed{Offset: c.Offset, Metadata: c.Metadata, Generation: c.Generation, Member: c.Member}
	}
	return out
}

func TestCommitFetchListRoundTrip(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	ctx := qxdtest.Context(t, 30*time.Second)

	cases := []struct {
		name  string
		group string
	}{
		{"plain", "billing"},
		{"space", "with space"},
		{"escape look-alike", "with=20space"},
		{"dots", "dots.in.the.id"},
		{"slashes", "team/app\\worker"},
		{"unicode", "ünïcödé-组-🚀"},
		{"wildcards", "a*b>c"},
		{"one char", "x"},
		{"longest", strings.Repeat("g", semantics.MaxGroupIDLen)},
	}
	start := time.Now().Add(-time.Second)
	t.Run("groups", func(t *testing.T) {
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				base := int64(i * 1000)
				in := map[semantics.TopicPartition]offsets.Commit{
					tp("orders", 0):    {Offset: base + 1, Metadata: "m0 of " + tc.group},
					tp("orders", 7):    {Offset: base + 2},
					tp("orders.eu", 0): {Offset: base + 3, Metadata: "eu"},
					tp("a_b-c", 2):     {Offset: 0},
				}
				member := "member-" + tc.name
				if err := st.Commit(ctx, tc.group, 4, member, in); err != nil {
					t.Fatalf("commit: %v", err)
				}
				want := map[semantics.TopicPartition]offsets.Committed{}
				for k, c := range in {
					want[k] = offsets.Committed{Offset: c.Offset, Metadata: c.Metadata, Generation: 4, Member: member}
				}

				asked := append(slices.Collect(maps.Keys(in)), tp("orders", 1), tp("other", 0))
				got, err := st.Fetch(ctx, tc.group, asked)
				if err != nil {
					t.Fatalf("fetch: %v", err)
				}
				if !maps.Equal(stored(got), want) {
					t.Errorf("fetch = %v, want %v", stored(got), want)
				}
				for k, c := range got {
					if c.Revision == 0 || c.Time.Before(start) || c.Time.After(time.Now().Add(time.Second)) {
						t.Errorf("fetch %s: revision %d, time %v: want a revision and the commit time", k, c.Revision, c.Time)
					}
				}

				list, err := st.List(ctx, tc.group)
				if err != nil {
					t.Fatalf("list: %v", err)
				}
				if !maps.EqualFunc(list, got, func(a, b offsets.Committed) bool {
					return a.Offset == b.Offset && a.Metadata == b.Metadata && a.Generation == b.Generation &&
						a.Member == b.Member && a.Time.Equal(b.Time) && a.Revision == b.Revision
				}) {
					t.Errorf("list = %v, want what fetch gave: %v", list, got)
				}
			})
		}
	})

	groups, err := st.Groups(ctx)
	if err != nil {
		t.Fatalf("groups: %v", err)
	}
	var want []string
	for _, tc := range cases {
		want = append(want, tc.group)
	}
	slices.Sort(want)
	if !slices.Equal(groups, want) {
		t.Errorf("groups = %q, want %q", groups, want)
	}

	none, err := st.List(ctx, "never committed")
	if err != nil || len(none) != 0 {
		t.Errorf("list of a group without commits = %v, %v; want empty", none, err)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	ctx := qxdtest.Context(t, 30*time.Second)

	// Every case seeds its own groups "<case>/a" and "<case>/b" with these commits
	// at generation 9.
	seed := []semantics.TopicPartition{tp("x", 0), tp("x", 1), tp("x.y", 0), tp("y", 0)}
	all := func(but ...semantics.TopicPartition) []semantics.TopicPartition {
		return slices.DeleteFunc(slices.Clone(seed), func(k semantics.TopicPartition) bool { return slices.Contains(but, k) })
	}
	cases := []struct {
		name     string
		op       func(ctx context.Context, a, b string) error
		wantErr  error
		wantA    []semantics.TopicPartition
		wantB    []semantics.TopicPartition
		noSeedsA bool
	}{
		{
			name:  "delete group",
			op:    func(ctx context.Context, a, _ string) error { return st.Delete(ctx, a) },
			wantB: seed,
		},
		{
			name:  "delete topic",
			op:    func(ctx context.Context, a, _ string) error { return st.DeleteTopic(ctx, a, "x") },
			wantA: all(tp("x", 0), tp("x", 1)),
			wantB: seed,
		},
		{
			name:  "delete dotted topic",
			op:    func(ctx context.Context, a, _ string) error { return st.DeleteTopic(ctx, a, "x.y") },
			wantA: all(tp("x.y", 0)),
			wantB: seed,
		},
		{
			name:  "delete topic without commits",
			op:    func(ctx context.Context, a, _ string) error { return st.DeleteTopic(ctx, a, "zzz") },
			wantA: seed,
			wantB: seed,
		},
		{
			name:     "delete group without commits",
			op:       func(ctx context.Context, a, _ string) error { return st.Delete(ctx, a) },
			wantErr:  semantics.ErrGroupIDNotFound,
			wantB:    seed,
			noSeedsA: true,
		},
		{
			name:     "delete topic of group without commits",
			op:       func(ctx context.Context, a, _ string) error { return st.DeleteTopic(ctx, a, "x") },
			wantErr:  semantics.ErrGroupIDNotFound,
			wantB:    seed,
			noSeedsA: true,
		},
		{
			name: "delete twice",
			op: func(ctx context.Context, a, _ string) error {
				if err := st.Delete(ctx, a); err != nil {
					return err
				}
				return st.Delete(ctx, a)
			},
			wantErr: semantics.ErrGroupIDNotFound,
			wantB:   seed,
		},
		{
			name: "commit after delete is not fenced by the deleted generation",
			op: func(ctx context.Context, a, _ string) error {
				if err := st.Delete(ctx, a); err != nil {
					return err
				}
				return st.Commit(ctx, a, 1, "m", map[semantics.TopicPartition]offsets.Commit{tp("y", 0): {Offset: 5}})
			},
			wantA: []semantics.TopicPartition{tp("y", 0)},
			wantB: seed,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := tc.name+"/a", tc.name+"/b"
			for _, g := range []string{a, b} {
				if g == a && tc.noSeedsA {
					continue
				}
				in := map[semantics.TopicPartition]offsets.Commit{}
				for _, k := range seed {
					in[k] = offsets.Commit{Offset: 100}
				}
				if err := st.Commit(ctx, g, 9, "m", in); err != nil {
					t.Fatalf("seed %q: %v", g, err)
				}
			}
			err := tc.op(ctx, a, b)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), a) {
				t.Errorf("error %q does not name the group %q", err, a)
			}
			for g, want := range map[string][]semantics.TopicPartition{a: tc.wantA, b: tc.wantB} {
				got, err := st.List(ctx, g)
				if err != nil {
					t.Fatalf("list %q: %v", g, err)
				}
				keys := slices.Collect(maps.Keys(got))
				slices.SortFunc(keys, compareTP)
				want = slices.Clone(want)
				slices.SortFunc(want, compareTP)
				if !slices.Equal(keys, want) {
					t.Errorf("group %q left with %v, want %v", g, keys, want)
				}
			}
			groups, err := st.Groups(ctx)
			if err != nil {
				t.Fatalf("groups: %v", err)
			}
			if slices.Contains(groups, a) != (len(tc.wantA) > 0) {
				t.Errorf("groups %q: has %q = %v, want %v", groups, a, !(len(tc.wantA) > 0), len(tc.wantA) > 0)
			}
		})
	}
}

func compareTP(x, y semantics.TopicPartition) int {
	if c := strings.Compare(x.Topic, y.Topic); c != 0 {
		return c
	}
	return int(x.Partition - y.Partition)
}

func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	st, js := openStore(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	one := func(topic string, p int32, off int64) map[semantics.TopicPartition]offsets.Commit {
		return map[semantics.TopicPartition]offsets.Commit{tp("good", 0): {Offset: 1}, tp(topic, p): {Offset: off}}
	}
	reset := func(topic string, p int32, off int64) map[semantics.TopicPartition]int64 {
		return map[semantics.TopicPartition]int64{tp("good", 0): 1, tp(topic, p): off}
	}

	cases := []struct {
		name     string
		op       func(ctx context.Context) error
		wantKind error
		wantText string
	}{
		{"commit empty group", func(ctx context.Context) error { return st.Commit(ctx, "", 1, "m", one("t", 0, 1)) },
			semantics.ErrInvalidGroupID, "group id is empty"},
		{"commit control character in group", func(ctx context.Context) error { return st.Commit(ctx, "a\nb", 1, "m", one("t", 0, 1)) },
			semantics.ErrInvalidGroupID, `"a\nb"`},
		{"commit overlong group", func(ctx context.Context) error {
			return st.Commit(ctx, strings.Repeat("g", semantics.MaxGroupIDLen+1), 1, "m", one("t", 0, 1))
		}, semantics.ErrInvalidGroupID, "201 bytes"},
		{"commit bad topic", func(ctx context.Context) error { return st.Commit(ctx, "g1", 1, "m", one("bad topic!", 0, 1)) },
			semantics.ErrInvalidTopic, `"bad topic!"`},
		{"commit empty topic", func(ctx context.Context) error { return st.Commit(ctx, "g2", 1, "m", one("", 0, 1)) },
			semantics.ErrInvalidTopic, "topic name is empty"},
		{"commit topic ..", func(ctx context.Context) error { return st.Commit(ctx, "g3", 1, "m", one("..", 0, 1)) },
			semantics.ErrInvalidTopic, `".."`},
		{"commit negative offset", func(ctx context.Context) error { return st.Commit(ctx, "g4", 1, "m", one("t", 3, -3)) },
			semantics.ErrInvalidRequest, "t/3: offset -3"},
		{"commit negative partition", func(ctx context.Context) error { return st.Commit(ctx, "g5", 1, "m", one("t", -2, 1)) },
			semantics.ErrInvalidRequest, "partition -2"},
		{"commit bad generation", func(ctx context.Context) error { return st.Commit(ctx, "g6", -2, "m", one("t", 0, 1)) },
			semantics.ErrInvalidRequest, "generation -2"},
		{"commit metadata too long", func(ctx context.Context) error {
			return st.Commit(ctx, "g7", 1, "m", map[semantics.TopicPartition]offsets.Commit{
				tp("good", 0): {Offset: 1}, tp("t", 0): {Offset: 1, Metadata: strings.Repeat("x", offsets.MaxMetadataLen+1)}})
		}, semantics.ErrInvalidRequest, "metadata is 4097 bytes"},
		{"reset empty group", func(ctx context.Context) error { return st.Reset(ctx, "", reset("t", 0, 1)) },
			semantics.ErrInvalidGroupID, "group id is empty"},
		{"reset bad topic", func(ctx context.Context) error { return st.Reset(ctx, "g8", reset("t/1", 0, 1)) },
			semantics.ErrInvalidTopic, `"t/1"`},
		{"reset negative offset", func(ctx context.Context) error { return st.Reset(ctx, "g9", reset("t", 0, -5)) },
			semantics.ErrInvalidRequest, "offset -5"},
		{"reset to latest", func(ctx context.Context) error { return st.Reset(ctx, "g10", reset("t", 0, offsets.Latest)) },
			semantics.ErrInvalidRequest, "offset -1"},
		{"fetch empty group", func(ctx context.Context) error {
			_, err := st.Fetch(ctx, "", []semantics.TopicPartition{tp("t", 0)})
			return err
		}, semantics.ErrInvalidGroupID, "group id is empty"},
		{"fetch bad topic", func(ctx context.Context) error {
			_, err := st.Fetch(ctx, "g", []semantics.TopicPartition{tp("t*", 0)})
			return err
		}, semantics.ErrInvalidTopic, `"t*"`},
		{"list empty group", func(ctx context.Context) error {
			_, err := st.List(ctx, "")
			return err
		}, semantics.ErrInvalidGroupID, "group id is empty"},
		{"delete empty group", func(ctx context.Context) error { return st.Delete(ctx, "") },
			semantics.ErrInvalidGroupID, "group id is empty"},
		{"delete bad topic", func(ctx context.Context) error { return st.DeleteTopic(ctx, "g", "a b") },
			semantics.ErrInvalidTopic, `"a b"`},
		{"open with zero replicas", func(ctx context.Context) error {
			_, err := offsets.Open(ctx, js, 0)
			return err
		}, semantics.ErrInvalidReplicationFactor, "0 replicas"},
	}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				err := tc.op(ctx)
				if !errors.Is(err, tc.wantKind) {
					t.Fatalf("err = %v, want %v", err, tc.wantKind)
				}
				if !strings.Contains(err.Error(), tc.wantText) {
					t.Errorf("error %q does not say %q", err, tc.wantText)
				}
			})
		}
	})
	groups, err := st.Groups(ctx)
	if err != nil || len(groups) != 0 {
		t.Errorf("after refused requests groups = %q, %v; want none stored", groups, err)
	}
}

func TestNewReadsAndDeletes(t *testing.T) {
	t.Parallel()
	st, js := openStore(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	in := map[semantics.TopicPartition]offsets.Commit{tp("t", 0): {Offset: 42, Metadata: "md"}}
	if err := st.Commit(ctx, "reader", 2, "m1", in); err != nil {
		t.Fatalf("commit: %v", err)
	}
	kv, err := js.KeyValue(ctx, semantics.OffsetsBucket)
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	ro := offsets.New(kv)
	got, err := ro.Fetch(ctx, "reader", []semantics.TopicPartition{tp("t", 0)})
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	want := map[semantics.TopicPartition]offsets.Committed{tp("t", 0): {Offset: 42, Metadata: "md", Generation: 2, Member: "m1"}}
	if !maps.Equal(stored(got), want) {
		t.Errorf("fetch = %v, want %v", stored(got), want)
	}
	if err := ro.Delete(ctx, "reader"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if got, err := st.List(ctx, "reader"); err != nil || len(got) != 0 {
		t.Errorf("list after delete = %v, %v; want empty", got, err)
	}
}

func TestLag(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                         string
		logStart, hw, committed, lag int64
	}{
		{"caught up", 0, 10, 10, 0},
		{"behind", 0, 10, 4, 6},
		{"empty partition", 0, 0, 0, 0},
		{"no commit", 3, 10, -1, 7},
		{"no commit, empty log", 5, 5, -1, 0},
		{"commit ahead of high watermark", 0, 10, 12, 0},
		{"commit below log start", 50, 100, 20, 80},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := offsets.Lag(tc.logStart, tc.hw, tc.committed); got != tc.lag {
				t.Errorf("Lag(%d, %d, %d) = %d, want %d", tc.logStart, tc.hw, tc.committed, got, tc.lag)
			}
		})
	}
}

// TestDeleteCommitsAtTheirRevision: a delete purges each commit only at the
// revision it was listed at. A commit stored through a newer coordinator
// between the listing and the purge is kept, and the delete fails with
// NOT_COORDINATOR; one stored since through the same coordinator is kept too,
// with a retriable REQUEST_TIMED_OUT; the commits not changed since are purged.
func TestDeleteCommitsAtTheirRevision(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	const group = "delete-revs"
	p0, p1, p2 := tp("orders", 0), tp("orders", 1), tp("orders", 2)
	old, cur := st.WithEpoch(5), st.WithEpoch(9)
	commit := func(s *offsets.Store, part semantics.TopicPartition, off int64) {
		t.Helper()
		if err := s.Commit(ctx, group, offsets.NoGeneration, "", map[semantics.TopicPartition]offsets.Commit{part: {Offset: off}}); err != nil {
			t.Fatal(err)
		}
	}
	commit(old, p0, 10)
	commit(old, p1, 11)
	commit(old, p2, 12)
	listed, err := old.List(ctx, group)
	if err != nil || len(listed) != 3 {
		t.Fatalf("list: %v, %v", listed, err)
	}
	commit(cur, p0, 100) // through the successor, after the listing
	commit(old, p1, 110) // through the same coordinator, after the listing
	err = old.DeleteCommits(ctx, group, listed)
	if !errors.Is(err, semantics.ErrNotCoordinator) || !errors.Is(err, semantics.ErrTimeout) {
		t.Fatalf("delete of commits changed since the listing: %v; want NOT_COORDINATOR for %s and REQUEST_TIMED_OUT for %s", err, p0, p1)
	}
	got, err := st.List(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[p0].Offset != 100 || got[p0].Epoch != 9 || got[p1].Offset != 110 {
		t.Fatalf("after the delete: %+v; want %s at 100 (epoch 9) and %s at 110 kept, %s purged", got, p0, p1, p2)
	}
	// Listed again, a commit of the newer epoch stops the deposed one's
	// delete before it purges anything.
	if listed, err = old.List(ctx, group); err != nil {
		t.Fatal(err)
	}
	if err := old.DeleteCommits(ctx, group, listed); !errors.Is(err, semantics.ErrNotCoordinator) {
		t.Fatalf("the deposed coordinator's delete of a listing with a newer epoch's commit: %v; want NOT_COORDINATOR", err)
	}
	if got, err := st.List(ctx, group); err != nil || len(got) != 2 {
		t.Fatalf("after the refused delete: %+v, %v; want both commits kept", got, err)
	}
	if err := cur.Delete(ctx, group); err != nil {
		t.Fatalf("the current coordinator's delete: %v", err)
	}
	if got, err := st.List(ctx, group); err != nil || len(got) != 0 {
		t.Fatalf("after the current coordinator's delete: %+v, %v; want none", got, err)
	}
}
