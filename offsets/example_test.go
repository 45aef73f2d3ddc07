package offsets_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// Commit a group's position, read it back, see a stale generation fenced, and
// compute the lag against a partition's high watermark.
func ExampleStore_Commit() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, _ := os.MkdirTemp("", "qxd-offsets-example-")
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
	nc, err := nats.Connect(node.ClientURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	store, err := offsets.Open(ctx, js, 1)
	if err != nil {
		fmt.Println(err)
		return
	}

	orders0 := semantics.TopicPartition{Topic: "orders", Partition: 0}
	err = store.Commit(ctx, "billing", 3, "member-1", map[semantics.TopicPartition]offsets.Commit{
		orders0: {Offset: 42, Metadata: "checkpoint"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	got, _ := store.Fetch(ctx, "billing", []semantics.TopicPartition{orders0})
	c := got[orders0]
	fmt.Printf("%s: offset %d (%s), generation %d, member %s\n", orders0, c.Offset, c.Metadata, c.Generation, c.Member)

	err = store.Commit(ctx, "billing", 2, "member-0", map[semantics.TopicPartition]offsets.Commit{orders0: {Offset: 7}})
	fmt.Println("generation 2 refused:", errors.Is(err, semantics.ErrIllegalGeneration))
	fmt.Println("lag at high watermark 100:", offsets.Lag(0, 100, c.Offset))
	// Output:
	// orders/0: offset 42 (checkpoint), generation 3, member member-1
	// generation 2 refused: true
	// lag at high watermark 100: 58
}
