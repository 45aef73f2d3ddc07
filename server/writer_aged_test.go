package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// A writer that loads a partition whose batches all aged out before the checkpoint
// bucket recorded their offsets must not give those offsets again (invariant 2):
// the bucket is set back here to a checkpoint from before the batches, as a
// bucket whose last write lagged past the retention would be.
func TestWriterNeverReusesOffsetsOfAgedOutBatches(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 90*time.Second)
	qxdtest.CreateTopic(t, c, "aged", qxd.TopicConfig{Retention: 3 * time.Second})
	if off, err := produceRaw(t, c.Conn(), "aged", 0, buildBatch(t, semantics.NoProducer, "a", "b")); err != nil || off != 0 {
		t.Fatalf("append: offset %d, %v", off, err)
	}
	var id string
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := c.Admin().DescribeTopic(ctx, "aged")
		if err != nil {
			t.Fatal(err)
		}
		id = d.Topic.ID
		if pi := d.Partitions[0]; pi.Batches == 0 && pi.HighWatermark == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batches did not age out with their offsets recorded: %+v", d.Partitions[0])
		}
		time.Sleep(200 * time.Millisecond)
	}
	js, err := jetstream.New(c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, semantics.PartitionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	stale, _ := json.Marshal(semantics.Checkpoint{})
	if _, err := kv.Put(ctx, semantics.CheckpointKey(id, 0), stale); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	n = qxdtest.StartNodeWith(t, cfg)
	c = qxdtest.Connect(t, n)
	off, err := produceRaw(t, c.Conn(), "aged", 0, buildBatch(t, semantics.NoProducer, "c"))
	if err != nil {
		t.Fatal(err)
	}
	if off < 2 {
		t.Fatalf("offset %d given again after the batches holding 0 and 1 aged out", off)
	}
	t.Logf("first offset after the load: %d", off)
}
