package qxd_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestConsumerPollMixedBatches reads batches of very different sizes from several
// partitions at once: Poll gathers small batches into one result and hands large ones
// out on their own, and every record arrives once, in offset order per partition,
// never more than MaxPollRecords at a time.
func TestConsumerPollMixedBatches(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	const parts = 3
	qxdtest.CreateTopic(t, c, "mixed", qxd.TopicConfig{Partitions: parts})
	p, err := c.NewProducer(qxd.RecordPartition(), qxd.Linger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	want := make([]int64, parts)
	for _, size := range []int{1, 3, 700, 2, 2, 2, 1200, 5, 300, 1} {
		for part := range int32(parts) {
			rs := make([]*qxd.Record, size)
			for i := range rs {
				rs[i] = &qxd.Record{Topic: "mixed", Partition: part, Value: fmt.Appendf(nil, "%d", want[part]+int64(i))}
			}
			if err := p.ProduceSync(ctx, rs...); err != nil {
				t.Fatal(err)
			}
			want[part] += int64(size)
		}
	}

	const maxPoll = 1000
	cons := qxdtest.NewConsumer(t, c, qxd.MaxPollRecords(maxPoll))
	defer cons.Close(context.Background())
	var as []qxd.Assignment
	for part := range int32(parts) {
		as = append(as, qxd.Assignment{Topic: "mixed", Partition: part, Offset: qxd.AtStart()})
	}
	if err := cons.Assign(ctx, as...); err != nil {
		t.Fatal(err)
	}
	next := make([]int64, parts)
	total, wantTotal := int64(0), want[0]*parts
	for total < wantTotal {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("after %d of %d records: %v", total, wantTotal, err)
		}
		if len(recs) > maxPoll {
			t.Fatalf("Poll returned %d records, more than MaxPollRecords %d", len(recs), maxPoll)
		}
		for _, r := range recs {
			if r.Offset != next[r.Partition] || string(r.Value) != fmt.Sprint(r.Offset) {
				t.Fatalf("partition %d: record at offset %d (value %s), want offset %d", r.Partition, r.Offset, r.Value, next[r.Partition])
			}
			next[r.Partition]++
		}
		total += int64(len(recs))
	}
	for part := range parts {
		if pos, _ := cons.Position("mixed", int32(part)); pos != want[part] {
			t.Fatalf("partition %d: position %d, want %d", part, pos, want[part])
		}
	}
}

// TestConsumerReadRecoversWhenReadsCanStartAgain breaks a partition read (its
// JetStream consumer is deleted, as when the node holding it dies) while the stream
// refuses new consumers (as a stream between leaders does): once the stream takes
// consumers again, records arrive within a few seconds. nats.go's ordered consumer,
// left to itself, retries creating its consumer for ever with a backoff growing to
// 10 s, outside any context (a read was seen silent for 45 s after a leader's node
// died).
func TestConsumerReadRecoversWhenReadsCanStartAgain(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "refusing", qxd.TopicConfig{Partitions: 1})
	fill(t, c, "refusing", 10, 10)

	js := qxdtest.JetStream(t, n)
	stream := semantics.StreamName("refusing", 0)
	setMaxConsumers := func(max int) {
		t.Helper()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.MaxConsumers = max
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	consumers := func() []string {
		t.Helper()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		l := s.ConsumerNames(ctx)
		for name := range l.Name() {
			names = append(names, name)
		}
		if err := l.Err(); err != nil {
			t.Fatal(err)
		}
		return names
	}

	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "refusing", Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < 10; {
		rs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += len(rs)
	}
	reads := consumers()
	if len(reads) != 1 {
		t.Fatalf("consumers on the stream while one partition read runs: %v", reads)
	}
	// Another consumer takes the only place left, then the read's consumer goes.
	setMaxConsumers(2)
	if _, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "squatter"}); err != nil {
		t.Fatal(err)
	}
	setMaxConsumers(1)
	if err := js.DeleteConsumer(ctx, stream, reads[0]); err != nil {
		t.Fatal(err)
	}
	fill(t, c, "refusing", 10, 10)
	quiet, cancel := context.WithTimeout(ctx, 8*time.Second)
	rs, err := cons.Poll(quiet)
	cancel()
	if len(rs) > 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("poll while the stream refuses consumers: %d records, %v; want none until the deadline", len(rs), err)
	}

	if err := js.DeleteConsumer(ctx, stream, "squatter"); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	for got := 0; got < 10; {
		rs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("read %d of 10 after the stream took consumers again: %v", got, err)
		}
		got += len(rs)
	}
	if d := time.Since(freed); d > 5*time.Second {
		t.Fatalf("the read resumed %v after the stream took consumers again, want within 5s", d.Round(time.Millisecond))
	}
}

// TestConsumerPollDoesNotGatherFullBatches: two fetched batches that together hold
// more than Poll gathers (256 records) are handed out one per Poll, each as decoded,
// rather than copied into one result.
func TestConsumerPollDoesNotGatherFullBatches(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "full", qxd.TopicConfig{Partitions: 1})
	p, err := c.NewProducer(qxd.Linger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	const batch = 200
	for range 2 {
		rs := make([]*qxd.Record, batch)
		for i := range rs {
			rs[i] = &qxd.Record{Topic: "full", Value: []byte("v")}
		}
		if err := p.ProduceSync(ctx, rs...); err != nil {
			t.Fatal(err)
		}
	}
	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "full", Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	for qxd.FetchedChunks(cons) < 2 {
		if ctx.Err() != nil {
			t.Fatalf("the consumer fetched %d of 2 batches", qxd.FetchedChunks(cons))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 2 {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != batch || recs[0].Offset != int64(i*batch) {
			t.Fatalf("poll %d: %d records from offset %d, want batch %d alone (%d records from %d)",
				i+1, len(recs), recs[0].Offset, i+1, batch, i*batch)
		}
	}
}

// TestConsumerReadsWithoutLargeBuffers starts reads of eight partitions holding one
// record each: the reads allocate little, not a buffer sized for a million messages
// per partition (8 MB each, zeroed and scanned by the collector), as nats.go's
// message iterator does when pulling by bytes. Not parallel: it counts the process's
// allocations.
func TestConsumerReadsWithoutLargeBuffers(t *testing.T) {
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	const parts = 8
	qxdtest.CreateTopic(t, c, "small-reads", qxd.TopicConfig{Partitions: parts})
	p, err := c.NewProducer(qxd.RecordPartition())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for part := range int32(parts) {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "small-reads", Partition: part, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	var as []qxd.Assignment
	for part := range int32(parts) {
		as = append(as, qxd.Assignment{Topic: "small-reads", Partition: part, Offset: qxd.AtStart()})
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx, as...); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < parts; {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += len(recs)
	}
	runtime.ReadMemStats(&after)
	if mb := float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20); mb > 16 {
		t.Errorf("starting %d partition reads of one record each allocated %.1f MiB, want under 16 MiB", parts, mb)
	}
}
