package qxd_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/partitioner"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

func TestTopicBadInput(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "exists", qxd.TopicConfig{Partitions: 2})
	cases := []struct {
		name    string
		topic   string
		cfg     qxd.TopicConfig
		want    error
		mention string
	}{
		{"space in name", "a b", qxd.TopicConfig{}, semantics.ErrInvalidTopic, `"a b"`},
		{"dot", ".", qxd.TopicConfig{}, semantics.ErrInvalidTopic, "reserved"},
		{"too long", strings.Repeat("x", 300), qxd.TopicConfig{}, semantics.ErrInvalidTopic, "245"},
		{"negative partitions", "neg", qxd.TopicConfig{Partitions: -1}, semantics.ErrInvalidPartitions, "-1"},
		{"too many partitions", "many", qxd.TopicConfig{Partitions: 20000}, semantics.ErrInvalidPartitions, "20000"},
		{"replicas 2", "r2", qxd.TopicConfig{Replicas: 2}, semantics.ErrInvalidReplicationFactor, "1, 3 or 5"},
		{"replicas 3 on one node", "r3", qxd.TopicConfig{Replicas: 3}, semantics.ErrInvalidReplicationFactor, "1 node"},
		{"existing topic", "exists", qxd.TopicConfig{Partitions: 2}, semantics.ErrTopicExists, `"exists"`},
		{"tiny max message", "tiny", qxd.TopicConfig{MaxMessageBytes: 10}, semantics.ErrInvalidConfig, "max message bytes"},
	}
	for _, tc := range cases {
		_, err := c.Admin().CreateTopic(ctx, tc.topic, tc.cfg)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: err %v, want %v mentioning %q", tc.name, err, tc.want, tc.mention)
		}
	}
	topics, err := c.Admin().ListTopics(ctx)
	if err != nil || len(topics) != 1 || topics[0].Name != "exists" {
		t.Fatalf("bad creates changed the topic list: %v %v", topics, err)
	}
	if _, err := c.Admin().DescribeTopic(ctx, "nope"); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Errorf("describe unknown: %v", err)
	}
	if err := c.Admin().DeleteTopic(ctx, "nope"); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Errorf("delete unknown: %v", err)
	}
	if _, err := c.Admin().AddPartitions(ctx, "exists", 1); !errors.Is(err, semantics.ErrInvalidPartitions) {
		t.Errorf("decrease partitions: %v", err)
	}
	p, _ := c.NewProducer()
	defer p.Close(ctx)
	if err := p.Produce(ctx, &qxd.Record{Topic: "nope", Value: []byte("x")}, nil); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Errorf("produce to unknown topic: %v", err)
	}
	big := &qxd.Record{Topic: "exists", Value: make([]byte, 2<<20)}
	if err := p.Produce(ctx, big, nil); !errors.Is(err, semantics.ErrMessageTooLarge) {
		t.Errorf("produce 2 MiB record: %v", err)
	}
	pm, _ := c.NewProducer(qxd.RecordPartition())
	defer pm.Close(ctx)
	if err := pm.Produce(ctx, &qxd.Record{Topic: "exists", Partition: 7, Value: []byte("x")}, nil); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Errorf("produce to partition 7 of 2: %v", err)
	}
	cons := qxdtest.NewConsumer(t, c, qxd.AutoOffsetReset(qxd.ResetNone))
	defer cons.Close(context.Background())
	err = cons.Assign(ctx, qxd.Assignment{Topic: "exists", Partition: 0, Offset: qxd.At(10)})
	if !errors.Is(err, semantics.ErrOffsetOutOfRange) || !strings.Contains(err.Error(), "high watermark 0") {
		t.Errorf("out-of-range offset: %v", err)
	}
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "exists", Partition: 5}); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Errorf("assign partition 5 of 2: %v", err)
	}
}

func TestTopicLifecycle(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	info := qxdtest.CreateTopic(t, c, "life", qxd.TopicConfig{Partitions: 3, Retention: time.Hour, RetentionBytes: 1 << 30})
	if info.ID == "" || info.State != semantics.TopicReady || info.Config.Partitions != 3 {
		t.Fatalf("created %+v", info)
	}
	p, _ := c.NewProducer()
	defer p.Close(ctx)
	var recs []*qxd.Record
	for i := 0; i < 300; i++ {
		recs = append(recs, &qxd.Record{Topic: "life", Key: []byte(fmt.Sprint(i)), Value: []byte("v")})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	d, err := c.Admin().DescribeTopic(ctx, "life")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, pi := range d.Partitions {
		if pi.Leader == "" || pi.LogStartOffset != 0 || pi.Records != pi.HighWatermark || pi.Problem != "" {
			t.Fatalf("partition %+v", pi)
		}
		sum += pi.Records
	}
	if sum != 300 {
		t.Fatalf("describe counts %d records, want 300", sum)
	}

	// Add partitions: keys now map as Kafka maps them over 5 partitions.
	if _, err := c.Admin().AddPartitions(ctx, "life", 5); err != nil {
		t.Fatal(err)
	}
	p2, _ := c.NewProducer()
	defer p2.Close(ctx)
	for i := 0; i < 50; i++ {
		r := &qxd.Record{Topic: "life", Key: []byte(fmt.Sprint(i)), Value: []byte("w")}
		if err := p2.ProduceSync(ctx, r); err != nil {
			t.Fatal(err)
		}
		if want := partitioner.KafkaPartition(r.Key, 5); r.Partition != want {
			t.Fatalf("after add-partitions key %s on %d, want %d", r.Key, r.Partition, want)
		}
	}

	if err := c.Admin().DeleteTopic(ctx, "life"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin().DescribeTopic(ctx, "life"); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Fatalf("describe after delete: %v", err)
	}
	// A new topic with the same name starts empty, with a new id.
	again := qxdtest.CreateTopic(t, c, "life", qxd.TopicConfig{})
	if again.ID == info.ID {
		t.Fatal("recreated topic kept the old id")
	}
	d, _ = c.Admin().DescribeTopic(ctx, "life")
	if d.Partitions[0].HighWatermark != 0 {
		t.Fatalf("recreated topic is not empty: %+v", d.Partitions[0])
	}
}

func TestHalfCreatedTopicIsReportedAndRepaired(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	// A create that died after writing the record and one of two streams.
	kv, err := c.Conn().JetStream()
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := kv.KeyValue(semantics.TopicsBucket)
	if err != nil {
		t.Fatal(err)
	}
	rec := fmt.Sprintf(`{"name":"half","id":"abc","config":%s,"state":"creating","created":"2026-01-01T00:00:00Z"}`,
		mustJSON(semantics.TopicConfig{Partitions: 2}.WithDefaults()))
	if _, err := bucket.Create(semantics.TopicKey("half"), []byte(rec)); err != nil {
		t.Fatal(err)
	}
	topics, err := c.Admin().ListTopics(ctx)
	if err != nil || len(topics) != 1 || topics[0].State != semantics.TopicCreating {
		t.Fatalf("list does not report the half-created topic: %+v %v", topics, err)
	}
	p, _ := c.NewProducer()
	defer p.Close(ctx)
	if err := p.Produce(ctx, &qxd.Record{Topic: "half", Value: []byte("x")}, nil); !errors.Is(err, semantics.ErrTopicNotReady) {
		t.Fatalf("produce to half-created topic: %v", err)
	}
	if _, err := c.Admin().CreateTopic(ctx, "half", qxd.TopicConfig{Partitions: 3}); !errors.Is(err, semantics.ErrTopicExists) {
		t.Fatalf("create with another config: %v", err)
	}
	info, err := c.Admin().CreateTopic(ctx, "half", qxd.TopicConfig{Partitions: 2})
	if err != nil || info.State != semantics.TopicReady {
		t.Fatalf("repair: %+v %v", info, err)
	}
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "half", Value: []byte("x")}); err != nil {
		t.Fatalf("produce after repair: %v", err)
	}
}

func TestCompactedTopic(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "users", qxd.TopicConfig{Compact: true, DeleteRetention: time.Second})
	p, _ := c.NewProducer()
	defer p.Close(ctx)
	if err := p.Produce(ctx, &qxd.Record{Topic: "users", Value: []byte("no key")}, nil); !errors.Is(err, semantics.ErrInvalidRecord) {
		t.Fatalf("record without key: %v", err)
	}
	put := func(k, v string) {
		r := &qxd.Record{Topic: "users", Key: []byte(k)}
		if v != "" {
			r.Value = []byte(v)
		}
		if err := p.ProduceSync(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	put("alice", "1")
	put("bob", "1")
	put("alice", "2")
	put("carol", "1")
	put("bob", "") // tombstone
	latest := func() map[string]string {
		cons := qxdtest.NewConsumer(t, c)
		defer cons.Close(context.Background())
		d, _ := c.Admin().DescribeTopic(ctx, "users")
		if err := cons.Assign(ctx, qxd.Assignment{Topic: "users", Offset: qxd.AtStart()}); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		// The count can go stale while reading: the tombstone may expire between
		// describe and the read. A read that finds nothing more for 2 s is done.
		for left := d.Partitions[0].Records; left > 0; {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			recs, err := cons.Poll(pctx)
			cancel()
			if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				left--
				if r.Value == nil {
					got[string(r.Key)] = "<tombstone>"
				} else {
					got[string(r.Key)] = string(r.Value)
				}
			}
		}
		return got
	}
	got := latest()
	want := map[string]string{"alice": "2", "bob": "<tombstone>", "carol": "1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("compacted view %v, want %v", got, want)
	}
	d, _ := c.Admin().DescribeTopic(ctx, "users")
	if d.Partitions[0].HighWatermark != 5 {
		t.Fatalf("high watermark %d, want 5 (offsets are not reused by compaction)", d.Partitions[0].HighWatermark)
	}
	// The tombstone is removed after the delete retention: the key is gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = latest()
		if _, ok := got["bob"]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tombstone still there after its delete retention: %v", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	put("dave", "1")
	d, _ = c.Admin().DescribeTopic(ctx, "users")
	if hw := d.Partitions[0].HighWatermark; hw != 6 {
		t.Fatalf("high watermark after the tombstone expired: %d, want 6", hw)
	}
}

func TestRestartKeepsTopicsAndRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := qxdtest.NodeConfig(t, dir)
	ctx := qxdtest.Context(t, 60*time.Second)
	n, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := qxd.Connect(ctx, n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	qxdtest.CreateTopic(t, c, "durable", qxd.TopicConfig{Partitions: 2})
	p, _ := c.NewProducer()
	for i := 0; i < 100; i++ {
		if err := p.Produce(ctx, &qxd.Record{Topic: "durable", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}

	n = qxdtest.StartNodeWith(t, cfg)
	c = qxdtest.Connect(t, n)
	d, err := c.Admin().DescribeTopic(ctx, "durable")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, pi := range d.Partitions {
		total += pi.HighWatermark
	}
	if total != 100 {
		t.Fatalf("after restart the topic holds %d records, want 100", total)
	}
	// Offsets continue where they were.
	p, _ = c.NewProducer(qxd.RecordPartition())
	defer p.Close(ctx)
	r := &qxd.Record{Topic: "durable", Partition: 0, Value: []byte("after")}
	if err := p.ProduceSync(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.Offset != d.Partitions[0].HighWatermark {
		t.Fatalf("first offset after restart %d, want %d", r.Offset, d.Partitions[0].HighWatermark)
	}
}

// TestOffsetsSurviveRetention lets every batch of a partition age out, restarts the
// node, and checks that offsets continue instead of starting again at 0.
func TestOffsetsSurviveRetention(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	ctx := qxdtest.Context(t, 60*time.Second)
	n, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := qxd.Connect(ctx, n.ClientURL())
	qxdtest.CreateTopic(t, c, "short", qxd.TopicConfig{Retention: 3 * time.Second})
	p, _ := c.NewProducer()
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "short", Value: []byte("a")}, &qxd.Record{Topic: "short", Value: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	p.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := c.Admin().DescribeTopic(ctx, "short")
		if err != nil {
			t.Fatal(err)
		}
		// Once the batches aged out, only the checkpoint bucket knows the offsets;
		// its last write may land a moment after them.
		pi := d.Partitions[0]
		if pi.Batches == 0 && pi.LogStartOffset == 2 && pi.HighWatermark == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after retention: %d batches, log start %d, high watermark %d, want 0, 2 and 2", pi.Batches, pi.LogStartOffset, pi.HighWatermark)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.Close()
	n.Close(ctx)
	n = qxdtest.StartNodeWith(t, cfg)
	c = qxdtest.Connect(t, n)
	p, _ = c.NewProducer()
	defer p.Close(ctx)
	r := &qxd.Record{Topic: "short", Value: []byte("c")}
	if err := p.ProduceSync(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.Offset != 2 {
		t.Fatalf("offset after everything aged out and a restart: %d, want 2", r.Offset)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
