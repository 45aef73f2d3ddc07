package qxd_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// countDisconnects counts the client's lost connections.
type countDisconnects struct{ n atomic.Int64 }

func (h *countDisconnects) OnBrokerDisconnect(qxd.BrokerMetadata, error) { h.n.Add(1) }

// TestConsumersShareClientFetchMaxBytes reads a topic whose records are twice
// what the node buffers for one client (its MaxPending) with one consumer per
// partition, all on one client, each fetching up to FetchMaxBytes ahead by
// itself: together they ask for no more than ClientFetchMaxBytes, so the node
// never cuts the client off as a slow consumer, and every record comes once,
// in order, without a reconnect.
func TestConsumersShareClientFetchMaxBytes(t *testing.T) {
	t.Parallel()
	const (
		parts      = 8
		perPart    = 8192    // 1 KiB records: 64 MiB in all
		maxPending = 9 << 20 // at least the node's MaxPayload
	)
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.MaxPending = maxPending
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := qxdtest.Context(t, 60*time.Second)
	lost := &countDisconnects{}
	c, err := qxd.Connect(ctx, n.ClientURL(), qxd.Hooks(lost), qxd.ClientFetchMaxBytes(2<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// Small batches: a read may always fetch one batch of the topic's max
	// message bytes, whatever its share.
	qxdtest.CreateTopic(t, c, "shared", qxd.TopicConfig{Partitions: parts, MaxMessageBytes: 128 << 10})
	p := qxdtest.NewProducer(t, c, qxd.RecordPartition(), qxd.BatchBytes(64<<10))
	val := make([]byte, 1024)
	for i := range parts * perPart {
		if err := p.Produce(ctx, &qxd.Record{Topic: "shared", Partition: int32(i % parts), Value: val}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for part := range int32(parts) {
		cons := qxdtest.NewConsumer(t, c) // FetchMaxBytes: the default 32 MiB
		if err := cons.Assign(ctx, qxd.Assignment{Topic: "shared", Partition: part, Offset: qxd.AtStart()}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next := int64(0); next < perPart; {
				recs, err := cons.Poll(ctx)
				if err != nil {
					t.Errorf("partition %d after offset %d: %v", part, next-1, err)
					return
				}
				for _, r := range recs {
					if r.Offset != next {
						t.Errorf("partition %d: offset %d after %d", part, r.Offset, next-1)
						return
					}
					next++
				}
			}
		}()
	}
	wg.Wait()
	vz, err := n.NATSServer().Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	if vz.SlowConsumers != 0 || lost.n.Load() != 0 {
		t.Fatalf("the node cut the client off as a slow consumer %d times, the client lost its connection %d times; want none", vz.SlowConsumers, lost.n.Load())
	}
}
