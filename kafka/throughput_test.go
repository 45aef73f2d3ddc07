package kafka_test

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestThroughput compares franz-go through the Kafka listener with the SDK, on one
// node in this process: produce then consume N records of 1 KiB, three runs each.
// It runs only with QXD_KAFKA_THROUGHPUT=N (records per run), and prints every run.
func TestThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("QXD_KAFKA_THROUGHPUT"))
	if n <= 0 {
		t.Skip("set QXD_KAFKA_THROUGHPUT=<records per run> to measure")
	}
	node, c := startNode(t)
	value := make([]byte, 1024)
	ctx := ctxFor(t, 30*time.Minute)
	mbps := func(d time.Duration) float64 { return float64(n) * 1024 / d.Seconds() / (1 << 20) }
	for run := 1; run <= 3; run++ {
		for _, door := range []string{"kafka", "sdk"} {
			topic := fmt.Sprintf("tp-%s-%d", door, run)
			qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
			var produce, consume time.Duration
			switch door {
			case "kafka":
				cl := kafkaClient(t, node, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
				var failed atomic.Int64
				start := time.Now()
				for range n {
					cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
						if err != nil {
							failed.Add(1)
						}
					})
				}
				if err := cl.Flush(ctx); err != nil || failed.Load() > 0 {
					t.Fatalf("kafka produce: %v, %d failed", err, failed.Load())
				}
				produce = time.Since(start)
				cons := kafkaClient(t, node, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
				start = time.Now()
				for got := 0; got < n; {
					fs := cons.PollFetches(ctx)
					if ctx.Err() != nil {
						t.Fatal(ctx.Err())
					}
					got += fs.NumRecords()
				}
				consume = time.Since(start)
				cons.Close()
				cl.Close()
			case "sdk":
				p, err := c.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				var failed atomic.Int64
				start := time.Now()
				for range n {
					if err := p.Produce(ctx, &qxd.Record{Topic: topic, Value: value}, func(_ *qxd.Record, err error) {
						if err != nil {
							failed.Add(1)
						}
					}); err != nil {
						t.Fatal(err)
					}
				}
				if err := p.Flush(ctx); err != nil || failed.Load() > 0 {
					t.Fatalf("sdk produce: %v, %d failed", err, failed.Load())
				}
				produce = time.Since(start)
				_ = p.Close(ctx)
				cons := c.NewConsumer()
				if err := cons.Assign(ctx, qxd.Assignment{Topic: topic, Offset: qxd.AtStart()}); err != nil {
					t.Fatal(err)
				}
				start = time.Now()
				for got := 0; got < n; {
					rs, err := cons.Poll(ctx)
					if err != nil {
						t.Fatal(err)
					}
					got += len(rs)
				}
				consume = time.Since(start)
				cons.Close()
			}
			t.Logf("run %d %-5s 1 KiB x %d: produce %.1f MiB/s (%v), consume %.1f MiB/s (%v)",
				run, door, n, mbps(produce), produce.Round(time.Millisecond), mbps(consume), consume.Round(time.Millisecond))
		}
	}
}
