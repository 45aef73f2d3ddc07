package qxd_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestPollFetchesPartitionErrors reads two topics and deletes one: PollFetches
// names the deleted topic's partition in a *PartitionError wrapping
// UNKNOWN_TOPIC_OR_PARTITION, and records of the other keep coming.
func TestPollFetchesPartitionErrors(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "stays", qxd.TopicConfig{Partitions: 1})
	qxdtest.CreateTopic(t, c, "goes", qxd.TopicConfig{Partitions: 1})
	cons := qxdtest.NewConsumer(t, c)
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "stays", Offset: qxd.AtStart()}, qxd.Assignment{Topic: "goes", Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	if err := c.Admin().DeleteTopic(ctx, "goes"); err != nil {
		t.Fatal(err)
	}
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var perr *qxd.PartitionError
	var records int
	for perr == nil || records == 0 {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "stays", Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		f, err := cons.PollFetches(pctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			t.Fatalf("no partition error after the topic's deletion (%d records read): %v", records, err)
		}
		records += len(f.Records)
		for _, e := range f.Errors {
			perr = e
		}
	}
	if perr.Topic != "goes" || perr.Partition != 0 || !errors.Is(perr, qxd.ErrUnknownTopic) {
		t.Fatalf("partition error %v (%s/%d), want goes/0 wrapping UNKNOWN_TOPIC_OR_PARTITION", perr, perr.Topic, perr.Partition)
	}
}

// TestConsumerLag reads part of a partition: Lag reports the position, the high
// watermark and the records not yet returned, and AtEnd once all are.
func TestConsumerLag(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "lag", qxd.TopicConfig{Partitions: 2})
	// One batch of 10 records: Poll has all of them at once.
	p, err := c.NewProducer(qxd.RecordPartition(), qxd.Linger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var recs []*qxd.Record
	for range 10 {
		recs = append(recs, &qxd.Record{Topic: "lag", Partition: 1, Value: []byte("v")})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	cons := qxdtest.NewConsumer(t, c, qxd.MaxPollRecords(4))
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "lag", Partition: 0, Offset: qxd.AtStart()},
		qxd.Assignment{Topic: "lag", Partition: 1, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	if recs, err := cons.Poll(ctx); err != nil || len(recs) != 4 {
		t.Fatalf("poll: %d records, %v; want 4", len(recs), err)
	}
	lag, err := cons.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []qxd.PartitionLag{
		{Topic: "lag", Partition: 0, AtEnd: true},
		{Topic: "lag", Partition: 1, Position: 4, HighWatermark: 10, Lag: 6},
	}
	if len(lag) != 2 || lag[0] != want[0] || lag[1] != want[1] {
		t.Fatalf("lag %+v, want %+v", lag, want)
	}
}
