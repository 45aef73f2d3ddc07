package qxd_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// setTopicsBucketAnswers switches the topics bucket's direct reads, the ones clients
// make, on or off: off, a client's read of a topic record finds no one to answer
// and retries until its deadline, as when the bucket's leader is paused or cut off.
// (A node shut down does not do it: the bucket's other replicas answer at once.)
func setTopicsBucketAnswers(t *testing.T, ctx context.Context, js jetstream.JetStream, on bool) {
	t.Helper()
	s, err := js.Stream(ctx, semantics.KVStream(semantics.TopicsBucket))
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.AllowDirect = on
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("topics bucket: set allow direct %v: %v", on, err)
	}
}

// produceWithin produces r and fails the test if Produce itself does not return
// within d. It returns the channel of r's result.
func produceWithin(t *testing.T, ctx context.Context, p *qxd.Producer, r *qxd.Record, d time.Duration) <-chan error {
	t.Helper()
	result := make(chan error, 1)
	returned := make(chan error, 1)
	start := time.Now()
	go func() {
		returned <- p.Produce(ctx, r, func(_ *qxd.Record, err error) { result <- err })
	}()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatalf("produce to %s/%d: %v", r.Topic, r.Partition, err)
		}
	case <-time.After(d):
		t.Fatalf("Produce to %s/%d, a healthy partition, still waits after %v", r.Topic, r.Partition, time.Since(start).Round(time.Millisecond))
	}
	return result
}

// TestProduceDoesNotWaitForMetadataRefresh: a producer whose record of a topic is
// due to be read again keeps producing with it while the topics bucket does not
// answer, and reads it again in the background once it does (partitions added
// meanwhile are then used).
func TestProduceDoesNotWaitForMetadataRefresh(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 90*time.Second)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "fresh", qxd.TopicConfig{Partitions: 1})
	p := qxdtest.NewProducer(t, c, qxd.RecordPartition())
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "fresh", Value: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin().AddPartitions(ctx, "fresh", 2); err != nil {
		t.Fatal(err)
	}

	js := qxdtest.JetStream(t, n)
	setTopicsBucketAnswers(t, ctx, js, false)
	reenable := true
	defer func() {
		if reenable {
			setTopicsBucketAnswers(t, context.Background(), js, true)
		}
	}()
	qxd.AgeTopicMetadata(p, "fresh")
	// Without the background read, Produce read the record itself and waited until
	// its context ended (here 90 s): a read that finds no one retries.
	for i := range 3 {
		start := time.Now()
		res := produceWithin(t, ctx, p, &qxd.Record{Topic: "fresh", Value: []byte("while the bucket is silent")}, 3*time.Second)
		if err := <-res; err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		t.Logf("record %d stored %v after Produce", i, time.Since(start).Round(time.Millisecond))
	}
	// The record the producer has says one partition.
	if err := p.Produce(ctx, &qxd.Record{Topic: "fresh", Partition: 1}, nil); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Fatalf("produce to partition 1 before the record was read again: %v, want ErrUnknownTopic", err)
	}

	setTopicsBucketAnswers(t, ctx, js, true)
	reenable = false
	waitProduced(t, ctx, p, &qxd.Record{Topic: "fresh", Partition: 1, Value: []byte("added")})
}

// waitProduced produces r until Produce accepts it (the producer's record of the
// topic has caught up), and waits for r to be stored.
func waitProduced(t *testing.T, ctx context.Context, p *qxd.Producer, r *qxd.Record) {
	t.Helper()
	for {
		err := p.ProduceSync(ctx, r)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("produce to %s/%d: %v", r.Topic, r.Partition, err)
		}
		qxd.AgeTopicMetadata(p, r.Topic)
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProducerFollowsRecreatedTopic: a topic deleted and created again is read
// again by a producer that used it: records go to the new topic's partitions, with
// its settings, from its first offset.
func TestProducerFollowsRecreatedTopic(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 90*time.Second)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "again", qxd.TopicConfig{Partitions: 1})
	p := qxdtest.NewProducer(t, c, qxd.RecordPartition())
	for range 3 {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "again", Value: []byte("old")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Admin().DeleteTopic(ctx, "again"); err != nil {
		t.Fatal(err)
	}
	qxdtest.CreateTopic(t, c, "again", qxd.TopicConfig{Partitions: 2})
	r := &qxd.Record{Topic: "again", Partition: 1, Value: []byte("new")}
	waitProduced(t, ctx, p, r)
	if r.Offset != 0 {
		t.Fatalf("first record of the new topic's partition 1 at offset %d, want 0", r.Offset)
	}
	r = &qxd.Record{Topic: "again", Partition: 0, Value: []byte("new")}
	if err := p.ProduceSync(ctx, r); err != nil || r.Offset != 0 {
		t.Fatalf("first record of the new topic's partition 0: offset %d, %v; want 0", r.Offset, err)
	}
}

// TestProducerForgetsDeletedTopic: once a producer reads again the record of a topic
// that was deleted, Produce refuses the topic as unknown, as for a topic it never
// used.
func TestProducerForgetsDeletedTopic(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 60*time.Second)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "gone", qxd.TopicConfig{Partitions: 1})
	p := qxdtest.NewProducer(t, c, qxd.RequestTimeout(time.Second), qxd.DeliveryTimeout(2*time.Second))
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "gone", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Admin().DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	qxd.AgeTopicMetadata(p, "gone")
	for {
		// Records accepted before the producer read the record again go to the
		// deleted partition and fail through their callbacks.
		err := p.Produce(ctx, &qxd.Record{Topic: "gone", Value: []byte("late")}, nil)
		if errors.Is(err, semantics.ErrUnknownTopic) {
			return
		}
		if err != nil || ctx.Err() != nil {
			t.Fatalf("produce to a deleted topic: %v, want ErrUnknownTopic", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProducerRereadsTopicWithOldTimestamps: records that carry old timestamps (a
// mirror copying its source's) do not keep the producer from reading the topic's
// record again: partitions added are used.
func TestProducerRereadsTopicWithOldTimestamps(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "mirrored", qxd.TopicConfig{Partitions: 1})
	p := qxdtest.NewProducer(t, c, qxd.RecordPartition())
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "mirrored", Timestamp: old, Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin().AddPartitions(ctx, "mirrored", 2); err != nil {
		t.Fatal(err)
	}
	waitProduced(t, ctx, p, &qxd.Record{Topic: "mirrored", Partition: 1, Timestamp: old, Value: []byte("v")})
}
