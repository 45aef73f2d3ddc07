package qxd_test

import (
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestStartPastAnEmptyPartitionsCheckpointLeftBehind starts reads at an offset
// of a partition whose batches all aged out, while a member of the partitions
// bucket's direct-get queue group holds an older checkpoint of it, as a replica
// cut from the bucket's leader answers with what it held at the cut: a mirror of
// the bucket's stream that refuses messages past those it took (MaxMsgs with
// DiscardNew), which JetStream puts into the stream's queue group. The empty
// partition's high watermark comes from the checkpoint; one read from the mirror
// (offset 1) is behind the writer's (5), and the start offset 5, a group's
// commit, must not be taken for out of range and reset to the reset policy's
// start. Without the change about half the starts gave position 1.
func TestStartPastAnEmptyPartitionsCheckpointLeftBehind(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 120*time.Second)
	const topic = "aged"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Retention: time.Second})
	meta, err := c.Admin().Topic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	bucket := semantics.KVStream(semantics.PartitionsBucket)
	p := qxdtest.NewProducer(t, c)
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: []byte("v0")}); err != nil {
		t.Fatal(err)
	}
	qxdtest.WaitCheckpoint(ctx, t, c.Conn(), meta.ID, 0, 1)
	st, err := js.Stream(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := info.State.Msgs
	qxdtest.WaitHeld(ctx, t, qxdtest.HoldBucketBehind(ctx, t, js, semantics.PartitionsBucket, int64(held)), held)
	for i := 1; i < 5; i++ {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	qxdtest.WaitCheckpoint(ctx, t, c.Conn(), meta.ID, 0, 5)
	part, err := js.Stream(ctx, semantics.StreamName(topic, 0))
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if pi, err := part.Info(ctx); err == nil && pi.State.Msgs == 0 && pi.State.LastSeq >= 5 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the partition's batches did not age out")
		}
	}
	// Each checkpoint read reaches the mirror with probability 1/2: 40 starts all
	// miss it with probability 2^-40.
	for round := range 40 {
		cons, err := c.NewConsumer(qxd.AutoOffsetReset(qxd.ResetEarliest))
		if err != nil {
			t.Fatal(err)
		}
		if err := cons.Assign(ctx, qxd.Assignment{Topic: topic, Partition: 0, Offset: qxd.At(5)}); err != nil {
			t.Fatalf("round %d: assign at offset 5: %v", round, err)
		}
		pos, ok := cons.Position(topic, 0)
		_ = cons.Close(ctx)
		if !ok || pos != 5 {
			t.Fatalf("round %d: a read assigned at offset 5, a commit past the checkpoint a replica held, starts at %d (%v), want 5", round, pos, ok)
		}
	}
}
