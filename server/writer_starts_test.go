package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestWriterStartsDoNotWait makes one partition's writer start slowly — every
// batch of its log was removed, the last one before the checkpoint bucket
// recorded it, and a load waits catchUpWait for the bucket to catch up — and,
// while it loads, makes the node lead new partitions (a topic created on it).
// Their writers must take produce at once, not after the slow load: writer
// starts on a node are independent, so an election that brings a node many
// leaderships in a row is not served one reconcile after another.
func TestWriterStartsDoNotWait(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 2*time.Minute)
	const slow = "wslow"
	qxdtest.CreateTopic(t, c, slow, qxd.TopicConfig{Partitions: 1})
	ws := n.Writers()
	if _, err := ws.Append(ctx, slow, 0, buildBatch(t, semantics.NoProducer, "first")); err != nil {
		t.Fatal(err)
	}
	// A batch stored behind the writer's back, which no checkpoint records, and
	// then every batch removed: a load finds a log that ends after its
	// checkpoint and holds nothing to replay, and waits for the checkpoint.
	js := qxdtest.JetStream(t, n)
	b := buildBatch(t, semantics.NoProducer, "behind")
	semantics.SetBaseOffset(b, 1)
	if _, err := js.Publish(ctx, semantics.BatchSubject(slow, 0), b); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, semantics.StreamName(slow, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	// Restart the slow partition's writer: a hand-off on a single node fails to
	// step the stream down, and the node starts the writer again.
	stream := semantics.StreamName(slow, 0)
	_ = n.HandOffVia(ctx, n.Name(), stream, "")
	// While it loads, the node comes to lead the partitions of a new topic.
	const fresh = "wfresh"
	const parts = 4
	qxdtest.CreateTopic(t, c, fresh, qxd.TopicConfig{Partitions: parts})
	for p := int32(0); p < parts; p++ {
		if _, err := appendRetrying(ctx, ws, fresh, p, buildBatch(t, semantics.NoProducer, "v")); err != nil {
			t.Fatalf("produce to %s/%d: %v", fresh, p, err)
		}
	}
	// The slow writer is still loading: the new partitions did not wait for it.
	if _, err := ws.Append(ctx, slow, 0, buildBatch(t, semantics.NoProducer, "probe")); err == nil {
		t.Fatalf("%s/0 takes produce already: the new partitions were served only once its writer had loaded", slow)
	} else if !semantics.IsRetriable(err) {
		t.Fatalf("produce to %s/0 while its writer loads: %v (want a retriable refusal)", slow, err)
	}
	// And once loaded, it goes on past the removed batch.
	r, err := appendRetrying(ctx, ws, slow, 0, buildBatch(t, semantics.NoProducer, "last"))
	if err != nil || r.BaseOffset <= 1 {
		t.Fatalf("produce to %s/0 after its load: offset %d, %v (want one past 1)", slow, r.BaseOffset, err)
	}
}

// appendRetrying appends batch to partition p of topic through ws, again while
// the answer is a retriable refusal (no writer yet).
func appendRetrying(ctx context.Context, ws *server.Writers, topic string, p int32, batch []byte) (semantics.ProduceReply, error) {
	for {
		r, err := ws.Append(ctx, topic, p, append([]byte(nil), batch...))
		if !semantics.IsRetriable(err) || ctx.Err() != nil {
			return r, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}
