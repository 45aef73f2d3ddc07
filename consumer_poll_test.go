package qxd_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
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
	cons := c.NewConsumer(qxd.MaxPollRecords(maxPoll))
	defer cons.Close()
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
