package qxd_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/server"
)

// Produce keyed records to a topic and read one partition back from an offset,
// against a node embedded in the program.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, _ := os.MkdirTemp("", "qxd-example-")
	defer os.RemoveAll(dir)
	cfg := server.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	node, err := server.Start(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close(ctx)

	client, _ := qxd.Connect(ctx, "", qxd.InProcess(node))
	defer client.Close()
	client.Admin().CreateTopic(ctx, "clicks", qxd.TopicConfig{Partitions: 4})

	producer, _ := client.NewProducer()
	defer producer.Close(ctx)
	var recs []*qxd.Record
	for i := 0; i < 5; i++ {
		recs = append(recs, &qxd.Record{Topic: "clicks", Key: []byte("user-7"), Value: []byte(fmt.Sprintf("click %d", i))})
	}
	if err := producer.ProduceSync(ctx, recs...); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("key user-7 is on partition %d (as Kafka's Java client would place it)\n", recs[0].Partition)

	consumer, err := client.NewConsumer()
	if err != nil {
		panic(err)
	}
	defer consumer.Close(ctx)
	consumer.Assign(ctx, qxd.Assignment{Topic: "clicks", Partition: recs[0].Partition, Offset: qxd.At(2)})
	got, _ := consumer.Poll(ctx)
	for _, r := range got {
		fmt.Printf("offset %d: %s\n", r.Offset, r.Value)
	}
	// Output:
	// key user-7 is on partition 0 (as Kafka's Java client would place it)
	// offset 2: click 2
	// offset 3: click 3
	// offset 4: click 4
}
