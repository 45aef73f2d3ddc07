package kafka_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// A record produced by a Kafka client is read by the SDK at the offset the Kafka
// client was told, and the other way round.
func TestKafkaProduceSDKConsume(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "orders", qxd.TopicConfig{Partitions: 3})
	cl := kafkaClient(t, n, kgo.DefaultProduceTopic("orders"))
	ctx := ctxFor(t, 60*time.Second)

	acked := map[string]rec{}
	for i := range 60 {
		r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "v%d", i)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		acked[string(r.Value)] = rec{string(r.Key), string(r.Value), r.Partition, r.Offset}
	}
	got := pollSDK(t, c, "orders", 3, len(acked))
	for _, r := range got {
		want, ok := acked[string(r.Value)]
		if !ok {
			t.Fatalf("SDK read %s, which was not produced", r.Value)
		}
		if g := (rec{string(r.Key), string(r.Value), r.Partition, r.Offset}); g != want {
			t.Errorf("SDK read %v, Kafka client was told %v", g, want)
		}
	}
}

func TestSDKProduceKafkaConsume(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "events", qxd.TopicConfig{Partitions: 2})
	ctx := ctxFor(t, 60*time.Second)
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	acked := map[string]rec{}
	for i := range 50 {
		r := &qxd.Record{Topic: "events", Key: fmt.Appendf(nil, "k%d", i%5), Value: fmt.Appendf(nil, "v%d", i),
			Headers: []qxd.Header{{Key: "h", Value: []byte("x")}}}
		if err := p.ProduceSync(ctx, r); err != nil {
			t.Fatal(err)
		}
		acked[string(r.Value)] = rec{string(r.Key), string(r.Value), r.Partition, r.Offset}
	}
	cl := kafkaClient(t, n, kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := 0
	for seen < len(acked) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", seen, len(acked), err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			want := acked[string(r.Value)]
			if g := (rec{string(r.Key), string(r.Value), r.Partition, r.Offset}); g != want {
				t.Errorf("Kafka client read %v, SDK was told %v", g, want)
			}
			if len(r.Headers) != 1 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != "x" {
				t.Errorf("record %s headers %v, want h=x", r.Value, r.Headers)
			}
		})
	}
}
