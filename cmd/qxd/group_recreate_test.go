package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// recreateTopic commits offset 1 of t/1 for group g (one record read), deletes t,
// creates it again and produces two records to partition 1.
func recreateTopic(t *testing.T, c *qxdCLI) {
	t.Helper()
	c.must("", "topic", "create", "t", "-p", "2")
	c.must("old\n", "topic", "produce", "t", "-p", "1")
	if got := c.must("", "topic", "consume", "t", "-g", "g", "-e", "-f", `%p %o %v\n`); got != "1 0 old\n" {
		t.Fatalf("first consume printed %q, want the one record", got)
	}
	c.must("", "topic", "delete", "t")
	c.must("", "topic", "create", "t", "-p", "2")
	c.must("new0\nnew1\n", "topic", "produce", "t", "-p", "1")
}

// TestGroupTopicRecreated: a topic deleted and created again is a new topic, and a
// group starts it from the reset policy, not from the old topic's committed offset.
func TestGroupTopicRecreated(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	recreateTopic(t, c)
	if got, want := c.must("", "topic", "consume", "t", "-g", "g", "-e", "-f", `%p %o %v\n`), "1 0 new0\n1 1 new1\n"; got != want {
		t.Errorf("consume --group after the topic was created again printed %q, want %q", got, want)
	}
}

// TestGroupTopicRecreatedStaleCommits: commits of an earlier incarnation that
// survived the delete (the node died before it removed them, or a member committed
// after the delete) do not apply to the new topic: neither a commit that names the
// old topic id, nor one stored without an id before the new topic was created.
func TestGroupTopicRecreatedStaleCommits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		value func(old []byte, oldID string) []byte
	}{
		{"old topic id", func(old []byte, oldID string) []byte {
			if !strings.Contains(string(old), oldID) {
				t.Errorf("stored commit %s does not name the topic id %s", old, oldID)
			}
			return old
		}},
		{"no topic id, committed before the create", func([]byte, string) []byte {
			return fmt.Appendf(nil, `{"offset":1,"generation":1,"time":%q}`, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := startCLI(t)
			js := qxdtest.JetStream(t, c.node)
			ctx := qxdtest.Context(t, 30*time.Second)
			kv, err := js.KeyValue(ctx, semantics.OffsetsBucket)
			if err != nil {
				t.Fatal(err)
			}
			key := semantics.OffsetKey("g", "t", 1)

			c.must("", "topic", "create", "t", "-p", "2")
			oldID := topicID(ctx, t, js, "t")
			c.must("old\n", "topic", "produce", "t", "-p", "1")
			c.must("", "topic", "consume", "t", "-g", "g", "-e")
			e, err := kv.Get(ctx, key)
			if err != nil {
				t.Fatalf("the group's commit of t/1: %v", err)
			}
			c.must("", "topic", "delete", "t")
			c.must("", "topic", "create", "t", "-p", "2")
			c.must("new0\nnew1\n", "topic", "produce", "t", "-p", "1")
			// What a delete that died before removing the commits leaves behind.
			if _, err := kv.Put(ctx, key, tc.value(e.Value(), oldID)); err != nil {
				t.Fatal(err)
			}

			if got, want := c.must("", "topic", "consume", "t", "-g", "g", "-e", "-f", `%p %o %v\n`), "1 0 new0\n1 1 new1\n"; got != want {
				t.Errorf("consume --group over a stale commit printed %q, want %q", got, want)
			}
			d := describeGroup(t, c, "g")
			for _, p := range d.Partitions {
				if p.Topic == "t" && p.Partition == 1 && p.Committed != 2 {
					t.Errorf("after the consume, t/1 committed %d, want 2: %+v", p.Committed, p)
				}
			}
		})
	}
}

// TestGroupDescribeCommittedAhead: a committed offset above the high watermark (a
// commit the fence cannot tell from the current topic's: stored without a topic id
// after the topic was created) is shown with a note saying why.
func TestGroupDescribeCommittedAhead(t *testing.T) {
	t.Parallel()
	c := startCLI(t)
	js := qxdtest.JetStream(t, c.node)
	ctx := qxdtest.Context(t, 30*time.Second)
	c.must("", "topic", "create", "t", "-p", "1")
	c.must("a\nb\n", "topic", "produce", "t")
	kv, err := js.KeyValue(ctx, semantics.OffsetsBucket)
	if err != nil {
		t.Fatal(err)
	}
	v := fmt.Appendf(nil, `{"offset":7,"generation":-1,"time":%q}`, time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := kv.Put(ctx, semantics.OffsetKey("g", "t", 0), v); err != nil {
		t.Fatal(err)
	}
	out := c.must("", "group", "describe", "g")
	if !strings.Contains(out, "NOTE") || !strings.Contains(out, "ahead of the log") {
		t.Errorf("describe of a commit above the high watermark:\n%s\nwant a note saying the committed offset is ahead of the log", out)
	}
	d := describeGroup(t, c, "g")
	if len(d.Partitions) != 1 || d.Partitions[0].Committed != 7 || d.Partitions[0].HighWatermark != 2 || d.Partitions[0].Note == "" {
		t.Errorf("describe --json: %+v, want t/0 committed 7, high watermark 2, with a note", d.Partitions)
	}
	_, err = c.run("", "topic", "consume", "t", "-g", "g", "--reset", "none")
	if err == nil || !strings.Contains(err.Error(), "committed offset 7 of t/0 is out of range (ahead of the log") {
		t.Errorf("consume --reset none over a commit ahead of the log: err = %v, want one saying why it is out of range", err)
	}
}

// topicID reads a topic's id from its record.
func topicID(ctx context.Context, t *testing.T, js jetstream.JetStream, topic string) string {
	t.Helper()
	kv, err := js.KeyValue(ctx, semantics.TopicsBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, semantics.TopicKey(topic))
	if err != nil {
		t.Fatal(err)
	}
	var m semantics.TopicMeta
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		t.Fatal(err)
	}
	return m.ID
}
