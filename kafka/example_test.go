package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd/server"
)

// A franz-go client creates a topic, produces and reads back through a node's Kafka
// listener (the README's "From any Kafka client").
func Example_franzGo() {
	dir, _ := os.MkdirTemp("", "qxd-kafka-example-")
	defer os.RemoveAll(dir)
	cfg := server.DefaultConfig()
	cfg.Listen, cfg.KafkaListen, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", dir
	node, err := server.Start(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(node.KafkaAddr()), // qxd server: 127.0.0.1:9092
		kgo.DefaultProduceTopic("orders"),
		kgo.ConsumeTopics("orders"),
		kgo.ConsumerGroup("billing"),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	// Three partitions, one replica; a topic already there (the README's orders) is fine.
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, "orders"); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		log.Fatal(err)
	}
	for _, v := range []string{"order 1", "order 2", "order 3"} {
		r := &kgo.Record{Key: []byte("alice"), Value: []byte(v)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			log.Fatal(err)
		}
	}
	for n := 0; n < 3; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			log.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			fmt.Printf("%s: %s (offset %d)\n", r.Key, r.Value, r.Offset)
			n++
		})
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// alice: order 1 (offset 0)
	// alice: order 2 (offset 1)
	// alice: order 3 (offset 2)
}
