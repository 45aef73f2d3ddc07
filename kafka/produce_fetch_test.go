package kafka_test

import (
	"bytes"
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

// Batches in every codec pass through: the SDK reads what franz-go wrote with each,
// and franz-go reads it back.
func TestKafkaCodecs(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	ctx := ctxFor(t, 60*time.Second)
	for name, codec := range map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
		"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()} {
		topic := "codec-" + name
		qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{})
		cl := kafkaClient(t, n, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codec),
			kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		var rs []*kgo.Record
		for i := range 20 {
			rs = append(rs, &kgo.Record{Value: fmt.Appendf(nil, "%s record %d %s", name, i, bytes.Repeat([]byte("z"), 200))})
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("%s: produce: %v", name, err)
		}
		got := pollSDK(t, c, topic, 1, 20)
		for i, r := range got {
			if !bytes.Equal(r.Value, rs[i].Value) || r.Offset != int64(i) {
				t.Fatalf("%s: SDK read %q at %d, want %q at %d", name, r.Value, r.Offset, rs[i].Value, i)
			}
		}
		back := 0
		for back < 20 {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: read back %d of 20", name, back)
			}
			fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("%s: fetch: %v", name, err) })
			back += fs.NumRecords()
		}
	}
}

// A keyed record lands on the partition the SDK's murmur2 partitioner picks, as a
// Kafka client's default partitioner places it.
func TestKafkaKeyedPartitions(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "keys", qxd.TopicConfig{Partitions: 6})
	ctx := ctxFor(t, 30*time.Second)
	cl := kafkaClient(t, n, kgo.DefaultProduceTopic("keys"))
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for i := range 30 {
		key := fmt.Appendf(nil, "customer-%d", i)
		kr := &kgo.Record{Key: key, Value: []byte("k")}
		if err := cl.ProduceSync(ctx, kr).FirstErr(); err != nil {
			t.Fatal(err)
		}
		sr := &qxd.Record{Topic: "keys", Key: key, Value: []byte("s")}
		if err := p.ProduceSync(ctx, sr); err != nil {
			t.Fatal(err)
		}
		if kr.Partition != sr.Partition {
			t.Errorf("key %s: franz-go put it on partition %d, the SDK on %d", key, kr.Partition, sr.Partition)
		}
	}
}
