package qxd_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// countResults returns counters of a producer's successes and failures and the
// callback that counts them.
func countResults() (acked, failed *atomic.Int64, cb func(*qxd.Record, error)) {
	acked, failed = new(atomic.Int64), new(atomic.Int64)
	return acked, failed, func(_ *qxd.Record, err error) {
		if err != nil {
			failed.Add(1)
		} else {
			acked.Add(1)
		}
	}
}

// TestProducerBufferBytes fills a producer's buffer (the records stay in an open
// batch: long linger, batch larger than the buffer's records): Produce then blocks
// until its context ends, Flush sends and frees the buffer, and Produce goes on.
func TestProducerBufferBytes(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "buffer", qxd.TopicConfig{})
	const bufferBytes = 64 << 10
	p, err := c.NewProducer(qxd.BufferBytes(bufferBytes), qxd.BatchBytes(bufferBytes), qxd.Linger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	acked, failed, cb := countResults()
	value := bytes.Repeat([]byte("v"), 1000)
	accepted := 0
	for {
		// The first record waits for the topic's metadata as well, which may
		// take more than 100 ms on a loaded machine (a CI run accepted none).
		wait := 100 * time.Millisecond
		if accepted == 0 {
			wait = 10 * time.Second
		}
		short, cancel := context.WithTimeout(ctx, wait)
		err := p.Produce(short, &qxd.Record{Topic: "buffer", Value: value}, cb)
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("produce into a full buffer: %v, want a deadline error", err)
			}
			break
		}
		accepted++
		if accepted > bufferBytes/len(value) {
			t.Fatalf("%d records of %d bytes accepted into a buffer of %d bytes", accepted, len(value), bufferBytes)
		}
	}
	if accepted < bufferBytes/len(value)-5 {
		t.Fatalf("only %d records of %d bytes accepted into a buffer of %d bytes", accepted, len(value), bufferBytes)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if acked.Load() != int64(accepted) || failed.Load() != 0 {
		t.Fatalf("after flush: %d acked, %d failed, want %d acked", acked.Load(), failed.Load(), accepted)
	}
	// The buffer is free again: a blocked Produce is woken when records finish.
	done := make(chan error, 1)
	go func() {
		for range accepted + 10 {
			if err := p.Produce(ctx, &qxd.Record{Topic: "buffer", Value: value}, cb); err != nil {
				done <- err
				return
			}
		}
		done <- p.Flush(ctx)
	}()
	time.Sleep(200 * time.Millisecond) // let Produce block on the full buffer
	p.Flush(ctx)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := acked.Load(); got != int64(2*accepted+10) {
		t.Fatalf("%d acked, want %d", got, 2*accepted+10)
	}
}

// TestProducerWaitsForAStalledPartition stops the node while a producer holds
// records for it: once the partition has its batches in flight and two more full
// batches waiting, Produce blocks (well before the 64 MiB buffer is full) and says
// which partition it waits for. After the node is back every accepted record is
// stored, and a Produce that was waiting goes on.
func TestProducerWaitsForAStalledPartition(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 60*time.Second)
	cfg, n, c := startRestartable(t, ctx)
	qxdtest.CreateTopic(t, c, "stalled", qxd.TopicConfig{Partitions: 1})
	const batchBytes = 4 << 10
	p, err := c.NewProducer(qxd.BatchBytes(batchBytes), qxd.MaxInFlight(2), qxd.Linger(0), qxd.RequestTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	acked, failed, cb := countResults()
	value := bytes.Repeat([]byte("v"), 1000)
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "stalled", Value: value}); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// In flight 2 batches, then 2 full ones waiting and the open one: about 20
	// records of 1000 bytes in batches of 4 KiB.
	accepted := 0
	for {
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := p.Produce(short, &qxd.Record{Topic: "stalled", Value: value}, cb)
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "stalled/0 has 2 full batches waiting") {
				t.Fatalf("produce to a stalled partition: %v, want a deadline error naming the partition", err)
			}
			break
		}
		accepted++
		if accepted > 40 {
			t.Fatalf("%d records accepted for a stalled partition, want Produce to wait after about 20", accepted)
		}
	}
	if accepted < 8 {
		t.Fatalf("only %d records accepted before Produce waited", accepted)
	}

	waiting := make(chan error, 1)
	go func() { waiting <- p.Produce(ctx, &qxd.Record{Topic: "stalled", Value: value}, cb) }()
	select {
	case err := <-waiting:
		t.Fatalf("Produce to a stalled partition returned %v, want it to wait", err)
	case <-time.After(200 * time.Millisecond):
	}
	qxdtest.StartNodeWith(t, cfg)
	if err := <-waiting; err != nil {
		t.Fatalf("Produce waiting for the partition: %v", err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if acked.Load() != int64(accepted+1) || failed.Load() != 0 {
		t.Fatalf("after the restart: %d acked, %d failed, want %d acked", acked.Load(), failed.Load(), accepted+1)
	}
}

// TestProducerControls fills a producer's buffer (records held in an open batch by a
// long linger): BufferedRecords counts them, TryProduce fails with ErrMaxBuffered
// instead of waiting, PurgeBuffered fails them with ErrPurged and stores nothing,
// and a record without topic goes to DefaultTopic.
func TestProducerControls(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "controls", qxd.TopicConfig{Partitions: 1})
	const bufferBytes = 16 << 10
	p, err := c.NewProducer(qxd.BufferBytes(bufferBytes), qxd.BatchBytes(bufferBytes), qxd.Linger(time.Hour),
		qxd.DefaultTopic("controls"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var purged atomic.Int64
	cb := func(_ *qxd.Record, err error) {
		if errors.Is(err, qxd.ErrPurged) {
			purged.Add(1)
		}
	}
	value := bytes.Repeat([]byte("v"), 1000)
	accepted := 0
	for {
		err := p.TryProduce(ctx, &qxd.Record{Value: value}, cb)
		if err != nil {
			if !errors.Is(err, qxd.ErrMaxBuffered) {
				t.Fatalf("TryProduce into a full buffer: %v, want ErrMaxBuffered", err)
			}
			break
		}
		accepted++
		if accepted > bufferBytes/len(value) {
			t.Fatalf("%d records of %d bytes accepted into a buffer of %d bytes", accepted, len(value), bufferBytes)
		}
	}
	if got := p.BufferedRecords(); got != int64(accepted) {
		t.Fatalf("BufferedRecords %d, want %d", got, accepted)
	}
	if got := p.PurgeBuffered(); got != accepted || purged.Load() != int64(accepted) || p.BufferedRecords() != 0 {
		t.Fatalf("purged %d (%d callbacks), %d still buffered; want %d purged", got, purged.Load(), p.BufferedRecords(), accepted)
	}
	r := &qxd.Record{Value: []byte("after")}
	if err := p.ProduceSync(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.Topic != "controls" || r.Offset != 0 {
		t.Fatalf("record without topic went to %s at %d, want controls at 0 (the purged ones not stored)", r.Topic, r.Offset)
	}
}
