package offsets_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// topicTable is a Topics over a map, for tests: the records a node keeps in its
// topics bucket.
type topicTable struct {
	mu sync.Mutex
	m  map[string]semantics.TopicMeta
}

func (tt *topicTable) Topic(_ context.Context, name string) (semantics.TopicMeta, error) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	t, ok := tt.m[name]
	if !ok {
		return t, semantics.Errorf(semantics.ErrUnknownTopic, "topic %q does not exist", name)
	}
	return t, nil
}

// create records a new incarnation of a topic of 2 partitions and returns its id.
func (tt *topicTable) create(name string) string {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	t := semantics.TopicMeta{Name: name, ID: semantics.NewTopicID(), State: semantics.TopicReady, Created: time.Now().UTC(),
		Config: semantics.TopicConfig{Partitions: 2}}
	tt.m[name] = t
	return t.ID
}

func (tt *topicTable) delete(name string) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	delete(tt.m, name)
}

func (tt *topicTable) setState(name string, s semantics.TopicState) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	t := tt.m[name]
	t.State = s
	tt.m[name] = t
}

// TestTopicFence: commits belong to one incarnation of their topic.
func TestTopicFence(t *testing.T) {
	t.Parallel()
	plain, js := openStore(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	kv, err := js.KeyValue(ctx, semantics.OffsetsBucket)
	if err != nil {
		t.Fatal(err)
	}
	topics := &topicTable{m: map[string]semantics.TopicMeta{}}
	st := plain.WithTopics(topics)
	one := func(topic string, p int32, c offsets.Commit) map[semantics.TopicPartition]offsets.Commit {
		return map[semantics.TopicPartition]offsets.Commit{tp(topic, p): c}
	}
	fetch := func(group, topic string, p int32) (offsets.Committed, bool) {
		t.Helper()
		got, err := st.Fetch(ctx, group, []semantics.TopicPartition{tp(topic, p)})
		if err != nil {
			t.Fatalf("fetch %s %s/%d: %v", group, topic, p, err)
		}
		c, ok := got[tp(topic, p)]
		return c, ok
	}
	raw := func(group, topic string, p int32) bool {
		t.Helper()
		_, err := kv.Get(ctx, semantics.OffsetKey(group, topic, p))
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}

	oldID := topics.create("t")
	if err := st.Commit(ctx, "g", 9, "m", one("t", 1, offsets.Commit{Offset: 1})); err != nil {
		t.Fatal(err)
	}
	if c, ok := fetch("g", "t", 1); !ok || c.Offset != 1 || c.TopicID != oldID {
		t.Fatalf("fetch after commit: %+v %v, want offset 1 with topic id %s", c, ok, oldID)
	}

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			topic string
			p     int32
			c     offsets.Commit
			want  string
		}{
			{"unknown topic", "nosuch", 0, offsets.Commit{Offset: 1}, `"nosuch" does not exist`},
			{"partition beyond the count", "t", 2, offsets.Commit{Offset: 1}, "partition 2 does not exist"},
			{"other topic id", "t", 0, offsets.Commit{Offset: 1, TopicID: "other"}, "created again"},
		} {
			err := st.Commit(ctx, "g", 9, "m", one(tc.topic, tc.p, tc.c))
			if !errors.Is(err, semantics.ErrUnknownTopic) || !contains(err, tc.want) {
				t.Errorf("%s: commit err = %v, want UNKNOWN_TOPIC_OR_PARTITION saying %q", tc.name, err, tc.want)
			}
			if tc.c.TopicID == "" { // a reset has no topic id to check
				if err := st.Reset(ctx, "g", map[semantics.TopicPartition]int64{tp(tc.topic, tc.p): 0}); !errors.Is(err, semantics.ErrUnknownTopic) {
					t.Errorf("%s: reset err = %v, want UNKNOWN_TOPIC_OR_PARTITION", tc.name, err)
				}
			}
			if raw("g", tc.topic, tc.p) && tc.p != 1 {
				t.Errorf("%s: a refused commit was stored", tc.name)
			}
		}
		topics.setState("t", semantics.TopicDeleting)
		defer topics.setState("t", semantics.TopicReady)
		if err := st.Commit(ctx, "g", 9, "m", one("t", 0, offsets.Commit{Offset: 1})); !errors.Is(err, semantics.ErrUnknownTopic) || !contains(err, "being deleted") {
			t.Errorf("commit to a topic being deleted: err = %v", err)
		}
	})

	// The topic is deleted without its commits, then created again.
	topics.delete("t")
	if _, ok := fetch("g", "t", 1); ok {
		t.Errorf("fetch of a deleted topic's commit found it")
	}
	if raw("g", "t", 1) {
		t.Errorf("the commit of a deleted topic was left in the bucket after a fetch")
	}
	if err := plain.Commit(ctx, "g", 9, "m", one("t", 1, offsets.Commit{Offset: 1, TopicID: oldID})); err != nil {
		t.Fatal(err) // as a delete that died before removing it leaves it
	}
	newID := topics.create("t")
	if got, err := st.List(ctx, "g"); err != nil || len(got) != 0 {
		t.Errorf("list after the topic was created again: %v %v, want nothing", got, err)
	}
	// A lower generation commits over the old incarnation's generation 9.
	if err := plain.Commit(ctx, "g", 9, "m", one("t", 1, offsets.Commit{Offset: 1, TopicID: oldID})); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(ctx, "g", 2, "m", one("t", 1, offsets.Commit{Offset: 2})); err != nil {
		t.Errorf("commit of generation 2 over the old topic's generation 9: %v", err)
	}
	if c, ok := fetch("g", "t", 1); !ok || c.Offset != 2 || c.TopicID != newID {
		t.Errorf("fetch: %+v %v, want offset 2 of topic id %s", c, ok, newID)
	}

	// Commits stored without a topic id count by their time.
	for _, tc := range []struct {
		name string
		at   time.Time
		kept bool
	}{
		{"before the create", time.Now().Add(-time.Hour), false},
		{"after the create", time.Now().Add(time.Second), true},
	} {
		v := fmt.Appendf(nil, `{"offset":5,"generation":1,"time":%q}`, tc.at.UTC().Format(time.RFC3339Nano))
		if _, err := kv.Put(ctx, semantics.OffsetKey("legacy", "t", 0), v); err != nil {
			t.Fatal(err)
		}
		c, ok := fetch("legacy", "t", 0)
		if ok != tc.kept || (ok && c.Offset != 5) {
			t.Errorf("commit without a topic id %s: fetched %+v %v, want kept %v", tc.name, c, ok, tc.kept)
		}
	}
}

func TestDeleteTopicOffsets(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	for _, g := range []string{"a", "b.c"} {
		err := st.Commit(ctx, g, 1, "m", map[semantics.TopicPartition]offsets.Commit{
			tp("t", 0): {Offset: 1}, tp("t", 3): {Offset: 1}, tp("t.u", 0): {Offset: 1}, tp("u", 0): {Offset: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	n, err := st.DeleteTopicOffsets(ctx, "t")
	if err != nil || n != 4 {
		t.Fatalf("delete offsets of t: %d, %v; want 4 removed", n, err)
	}
	for _, g := range []string{"a", "b.c"} {
		got, err := st.List(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got[tp("t", 0)]; ok || len(got) != 2 {
			t.Errorf("group %s after deleting t's offsets: %v, want t.u/0 and u/0", g, got)
		}
	}
	if n, err := st.DeleteTopicOffsets(ctx, "t"); err != nil || n != 0 {
		t.Errorf("delete again: %d, %v; want 0, nil", n, err)
	}
	if _, err := st.DeleteTopicOffsets(ctx, "bad/name"); !errors.Is(err, semantics.ErrInvalidTopic) {
		t.Errorf("bad topic name: %v", err)
	}
}

func contains(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}
