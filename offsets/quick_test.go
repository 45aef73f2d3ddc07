package offsets_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// quickTable is a QuickTopics whose quick records (a replica's copy) may be
// behind its current ones (the topics bucket's leader's).
type quickTable struct {
	current, behind *topicTable
}

func (q quickTable) Topic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	return q.current.Topic(ctx, name)
}

func (q quickTable) TopicQuick(ctx context.Context, name string) (semantics.TopicMeta, error) {
	return q.behind.Topic(ctx, name)
}

// TestQuickTopics: a commit checked against a quick record that is behind is
// refused only when the current record refuses it too, and reads judge by the
// current record.
func TestQuickTopics(t *testing.T) {
	t.Parallel()
	plain, _ := openStore(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	current := &topicTable{m: map[string]semantics.TopicMeta{}}
	behind := &topicTable{m: map[string]semantics.TopicMeta{}}
	st := plain.WithTopics(quickTable{current, behind})
	one := func(topic string, p int32, c offsets.Commit) map[semantics.TopicPartition]offsets.Commit {
		return map[semantics.TopicPartition]offsets.Commit{tp(topic, p): c}
	}
	fetch := func(topic string, p int32) (offsets.Committed, bool) {
		t.Helper()
		got, err := st.Fetch(ctx, "g", []semantics.TopicPartition{tp(topic, p)})
		if err != nil {
			t.Fatal(err)
		}
		c, ok := got[tp(topic, p)]
		return c, ok
	}

	// Created again: the copy still holds the old incarnation.
	behind.create("again")
	newID := current.create("again")
	if err := st.Commit(ctx, "g", 1, "m", one("again", 0, offsets.Commit{Offset: 5, TopicID: newID})); err != nil {
		t.Fatalf("commit of the new incarnation, the quick record the old one's: %v", err)
	}
	if c, ok := fetch("again", 0); !ok || c.Offset != 5 || c.TopicID != newID {
		t.Fatalf("fetch: %+v %v, want offset 5 of topic id %s", c, ok, newID)
	}

	// The new incarnation's commit, of a newer generation, is not overwritten by
	// a commit of the old one that the copy behind takes for current.
	if err := st.Commit(ctx, "g", 5, "m2", one("again", 1, offsets.Commit{Offset: 9, TopicID: newID})); err != nil {
		t.Fatal(err)
	}
	oldID := behind.m["again"].ID
	if err := st.Commit(ctx, "g", 3, "m", one("again", 1, offsets.Commit{Offset: 2, TopicID: oldID})); err == nil {
		t.Fatalf("a commit of the old incarnation, generation 3, over the new one's of generation 5 was stored")
	}
	if c, ok := fetch("again", 1); !ok || c.Offset != 9 || c.TopicID != newID {
		t.Fatalf("fetch: %+v %v, want offset 9 of topic id %s", c, ok, newID)
	}

	// Partitions added: the copy still counts two.
	behind.create("grown")
	current.create("grown")
	current.mu.Lock()
	g := current.m["grown"]
	g.Config.Partitions = 4
	current.m["grown"] = g
	current.mu.Unlock()
	if err := st.Commit(ctx, "g", 1, "m", one("grown", 3, offsets.Commit{Offset: 7})); err != nil {
		t.Fatalf("commit to a partition the quick record does not count yet: %v", err)
	}

	// Both refuse: refused.
	if err := st.Commit(ctx, "g", 1, "m", one("again", 0, offsets.Commit{Offset: 6, TopicID: "other"})); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Fatalf("commit naming another topic id: %v, want ErrUnknownTopic", err)
	}

	// Deleted, and the copy does not know yet: the commit passes, and reads,
	// which judge by the current record, leave it out.
	id := behind.create("gone")
	if err := st.Commit(ctx, "g", 1, "m", one("gone", 0, offsets.Commit{Offset: 3, TopicID: id})); err != nil {
		t.Fatalf("commit of a topic the quick record still holds: %v", err)
	}
	if c, ok := fetch("gone", 0); ok {
		t.Fatalf("fetch of a deleted topic's commit: %+v, want none", c)
	}
}
