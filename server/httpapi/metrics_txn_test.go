package httpapi_test

import (
	"errors"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestMetricsLastStableOffset: a partition with an open transaction reports the
// transaction's first offset as its last stable offset, below its high
// watermark; once the transaction commits, the high watermark.
func TestMetricsLastStableOffset(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	base := withHTTP(t, &cfg)
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	qxdtest.CreateTopic(t, c, "stable", qxd.TopicConfig{Partitions: 1})
	if _, err := n.Writers().Append(ctx, "stable", 0, batchOf(t, 2, "plain")); err != nil {
		t.Fatal(err)
	}
	tx := n.Transactions()
	var pid int64
	var epoch int16
	for {
		var err error
		if pid, epoch, err = tx.InitProducerID(ctx, "metrics", time.Minute, -1, -1); err == nil {
			break
		}
		if !errors.Is(err, semantics.ErrNotCoordinator) || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tx.AddPartitions(ctx, "metrics", pid, epoch, []semantics.TopicPartition{{Topic: "stable", Partition: 0}}); err != nil {
		t.Fatal(err)
	}
	var b semantics.BatchBuilder
	for range 3 {
		b.Append(&semantics.Record{Value: []byte("t")})
	}
	batch, err := b.Build(nil, semantics.ProducerInfo{ID: pid, Epoch: epoch, Transactional: true}, semantics.CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Writers().Append(ctx, "stable", 0, batch); err != nil {
		t.Fatal(err)
	}
	// expect waits for a scrape giving the partition high watermark hwm and last
	// stable offset lso (one read of the node's state serves scrapes for a while).
	expect := func(hwm, lso float64) {
		t.Helper()
		for {
			fams := scrape(t, base)
			h, hok := value(fams, "qxd_partition_high_watermark", "topic", "stable", "partition", "0")
			l, lok := value(fams, "qxd_partition_last_stable_offset", "topic", "stable", "partition", "0")
			if hok && lok && h == hwm && l == lso {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("high watermark %v (present %v), last stable offset %v (present %v); want %v and %v", h, hok, l, lok, hwm, lso)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	expect(5, 2)
	if err := tx.EndTxn(ctx, "metrics", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	expect(6, 6) // the commit marker takes an offset
}
