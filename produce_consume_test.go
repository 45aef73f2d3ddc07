package qxd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/partitioner"
)

// readAll polls until want records arrived or the context ends.
func readAll(t *testing.T, ctx context.Context, cons *qxd.Consumer, want int) []qxd.Record {
	t.Helper()
	var got []qxd.Record
	for len(got) < want {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d of %d records: %v", len(got), want, err)
		}
		got = append(got, recs...)
	}
	return got
}

func TestProduceConsumeKeyed(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	const parts = 6
	qxdtest.CreateTopic(t, c, "orders.eu", qxd.TopicConfig{Partitions: parts})

	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	const total = 5000
	recs := make([]*qxd.Record, total)
	for i := range recs {
		recs[i] = &qxd.Record{Topic: "orders.eu", Key: []byte(fmt.Sprintf("key-%d", i%97)), Value: []byte(fmt.Sprintf("v%d", i)),
			Headers: []qxd.Header{{Key: "h", Value: []byte{0, 1}}, {Key: "h", Value: nil}}}
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
	perPart := map[int32]int64{}
	for _, r := range recs {
		if want := partitioner.KafkaPartition(r.Key, parts); r.Partition != want {
			t.Fatalf("key %s went to partition %d, Kafka puts it on %d", r.Key, r.Partition, want)
		}
		perPart[r.Partition]++
	}

	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	var as []qxd.Assignment
	for i := int32(0); i < parts; i++ {
		as = append(as, qxd.Assignment{Topic: "orders.eu", Partition: i, Offset: qxd.AtStart()})
	}
	if err := cons.Assign(ctx, as...); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, ctx, cons, total)
	if len(got) != total {
		t.Fatalf("read %d records, want %d", len(got), total)
	}
	next := map[int32]int64{}
	lastByKey := map[string]int{}
	for _, r := range got {
		if r.Offset != next[r.Partition] {
			t.Fatalf("partition %d: offset %d, want %d (dense from 0)", r.Partition, r.Offset, next[r.Partition])
		}
		next[r.Partition]++
		var i int
		fmt.Sscanf(string(r.Value), "v%d", &i)
		if prev, ok := lastByKey[string(r.Key)]; ok && i <= prev {
			t.Fatalf("key %s: value %d after %d: per-key order broken", r.Key, i, prev)
		}
		lastByKey[string(r.Key)] = i
		if len(r.Headers) != 2 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != "\x00\x01" || r.Headers[1].Value != nil {
			t.Fatalf("headers not kept: %+v", r.Headers)
		}
	}
	for part, cnt := range perPart {
		if next[part] != cnt {
			t.Fatalf("partition %d: read %d, produced %d", part, next[part], cnt)
		}
	}
}
