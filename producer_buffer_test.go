package qxd_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

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
	var acked, failed atomic.Int64
	cb := func(_ *qxd.Record, err error) {
		if err != nil {
			failed.Add(1)
		} else {
			acked.Add(1)
		}
	}
	value := bytes.Repeat([]byte("v"), 1000)
	accepted := 0
	for {
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
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
