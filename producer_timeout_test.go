package qxd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestProduceDoneContextSendsNothing produces with a context that has ended: the
// record is refused with the context's error and nothing is stored.
func TestProduceDoneContextSendsNothing(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "donectx", qxd.TopicConfig{Partitions: 1})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "donectx", Value: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	called := make(chan error, 1)
	err = p.Produce(done, &qxd.Record{Topic: "donectx", Value: []byte("late")}, func(_ *qxd.Record, err error) { called <- err })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Produce with a cancelled context: %v, want context.Canceled", err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-called:
		t.Fatalf("callback of a refused record called with %v", err)
	default:
	}
	d, err := c.Admin().DescribeTopic(ctx, "donectx")
	if err != nil {
		t.Fatal(err)
	}
	if hw := d.Partitions[0].HighWatermark; hw != 1 {
		t.Fatalf("high watermark %d after a refused record, want 1", hw)
	}
}

// stoppedProducer starts a node with topics "timeout" (used by the producer once)
// and "unused", a producer with a short delivery timeout, and stops the node.
func stoppedProducer(t *testing.T, ctx context.Context, delivery time.Duration) *qxd.Producer {
	t.Helper()
	_, n, c := startRestartable(t, ctx)
	qxdtest.CreateTopic(t, c, "timeout", qxd.TopicConfig{Partitions: 1})
	qxdtest.CreateTopic(t, c, "unused", qxd.TopicConfig{Partitions: 1})
	p, err := c.NewProducer(qxd.DeliveryTimeout(delivery), qxd.RequestTimeout(500*time.Millisecond), qxd.Linger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "timeout", Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkRecordTimeout fails the test unless err is ErrRecordTimeout, not retriable,
// and says what is known of the record.
func checkRecordTimeout(t *testing.T, err error, says string) {
	t.Helper()
	if !errors.Is(err, qxd.ErrRecordTimeout) || qxd.IsRetriable(err) {
		t.Fatalf("record after the delivery timeout: %v (retriable %v), want ErrRecordTimeout, not retriable", err, qxd.IsRetriable(err))
	}
	if !strings.Contains(err.Error(), says) {
		t.Fatalf("record timeout %q does not say %q", err, says)
	}
}

// TestProduceRecordTimeout stops the node under a producer: a record in flight
// fails after the delivery timeout with ErrRecordTimeout, saying that its outcome
// is unknown, and the error is not retriable.
func TestProduceRecordTimeout(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 60*time.Second)
	const delivery = 2 * time.Second
	p := stoppedProducer(t, ctx, delivery)
	result := make(chan error, 1)
	start := time.Now()
	if err := p.Produce(ctx, &qxd.Record{Topic: "timeout", Value: []byte("in flight")}, func(_ *qxd.Record, err error) { result <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-result:
		checkRecordTimeout(t, err, "may or may not be stored")
		t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(3 * delivery):
		t.Fatalf("no result %v after the delivery timeout %v", 3*delivery, delivery)
	}
}

// TestProduceDoesNotBlockOnMetadata stops the node before a producer's first
// record for a topic: Produce does not wait for the topic's metadata beyond the
// delivery timeout, and the record fails through its callback with ErrRecordTimeout
// saying that it was not sent and why.
func TestProduceDoesNotBlockOnMetadata(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 60*time.Second)
	const delivery = 2 * time.Second
	p := stoppedProducer(t, ctx, delivery)
	result := make(chan error, 1)
	start := time.Now()
	produced := make(chan error, 1)
	go func() {
		produced <- p.Produce(ctx, &qxd.Record{Topic: "unused", Value: []byte("no metadata")}, func(_ *qxd.Record, err error) { result <- err })
	}()
	select {
	case err := <-produced:
		if err != nil {
			t.Fatalf("Produce to a topic without metadata while no node answers: %v, want the record accepted", err)
		}
	case <-time.After(delivery + 3*time.Second):
		t.Fatalf("Produce blocked on a topic's metadata for %v, beyond the delivery timeout %v", time.Since(start).Round(time.Millisecond), delivery)
	}
	select {
	case err := <-result:
		checkRecordTimeout(t, err, "not sent")
		checkRecordTimeout(t, err, "metadata")
		t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(3 * delivery):
		t.Fatalf("no result %v after the delivery timeout %v", 3*delivery, delivery)
	}
}

// TestProduceSyncErrorsPerRecord produces records of which one is too large:
// ProduceSync's error names that record, and the others are stored.
func TestProduceSyncErrorsPerRecord(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "persync", qxd.TopicConfig{Partitions: 1, MaxMessageBytes: 2048})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	big := &qxd.Record{Topic: "persync", Value: make([]byte, 4096)}
	rs := []*qxd.Record{{Topic: "persync", Value: []byte("a")}, big, {Topic: "persync", Value: []byte("b")}}
	err = p.ProduceSync(ctx, rs...)
	var pe *qxd.ProduceError
	if !errors.As(err, &pe) || !errors.Is(err, qxd.ErrMessageTooLarge) {
		t.Fatalf("ProduceSync with a record too large: %v, want a *ProduceError wrapping MESSAGE_TOO_LARGE", err)
	}
	if len(pe.Failed) != 1 || pe.Failed[0].Record != big || pe.Total != 3 {
		t.Fatalf("failed records %+v of %d, want only the large one of 3", pe.Failed, pe.Total)
	}
	if rs[0].Offset != 0 || rs[2].Offset != 1 {
		t.Fatalf("the other records at offsets %d and %d, want 0 and 1", rs[0].Offset, rs[2].Offset)
	}
}
