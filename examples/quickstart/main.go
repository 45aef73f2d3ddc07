// Command quickstart runs a qxd node inside the program, creates a topic, produces
// keyed records and reads them back by partition and offset.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/server"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	dir, err := os.MkdirTemp("", "qxd-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := server.DefaultConfig()
	cfg.Listen = "127.0.0.1:0" // any free port
	cfg.DataDir = dir
	node, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer node.Close(ctx)

	client, err := qxd.Connect(ctx, node.ClientURL())
	if err != nil {
		return err
	}
	defer client.Close()

	if _, err := client.Admin().CreateTopic(ctx, "orders", qxd.TopicConfig{Partitions: 3}); err != nil {
		return err
	}

	producer, err := client.NewProducer()
	if err != nil {
		return err
	}
	var records []*qxd.Record
	for i, customer := range []string{"alice", "bob", "carol", "alice", "bob", "alice"} {
		records = append(records, &qxd.Record{
			Topic: "orders", Key: []byte(customer), Value: []byte(fmt.Sprintf("order %d", i)),
		})
	}
	if err := producer.ProduceSync(ctx, records...); err != nil {
		return err
	}
	if err := producer.Close(ctx); err != nil {
		return err
	}
	for _, r := range records {
		fmt.Printf("produced %-6s %q to partition %d at offset %d\n", r.Key, r.Value, r.Partition, r.Offset)
	}

	consumer, err := client.NewConsumer()
	if err != nil {
		return err
	}
	defer consumer.Close(ctx)
	var assign []qxd.Assignment
	for p := int32(0); p < 3; p++ {
		assign = append(assign, qxd.Assignment{Topic: "orders", Partition: p, Offset: qxd.AtStart()})
	}
	if err := consumer.Assign(ctx, assign...); err != nil {
		return err
	}
	for read := 0; read < len(records); {
		recs, err := consumer.Poll(ctx)
		if err != nil {
			return err
		}
		for _, r := range recs {
			fmt.Printf("consumed partition %d offset %d: %s = %s\n", r.Partition, r.Offset, r.Key, r.Value)
		}
		read += len(recs)
	}
	return nil
}
