// Command natsbridge shows services that speak plain NATS adopting a qxd topic
// without changing, against a qxd node embedded in the program:
//
//	order service (plain nats.go)            shipping service (plain nats.go, queue group)
//	  publishes orders.created.<customer>      subscribes shipping.orders.*
//	        │                                          ▲
//	        ▼  ingest bridge "orders-in"               │  egress bridge "orders-out"
//	        └──────────────> topic "orders" ───────────┘
//	        ┌──────────────>      │
//	        │  capture bridge     └──> billing: an existing nats.MsgHandler attached to
//	        │  "returns-in"            the topic as consumer group "billing"
//	returns service (nats.go JetStream)
//	  js.Publish orders.returned.<customer>
//
// The order service publishes with nats.Conn.Request, so each publish returns once
// its record is stored, naming its partition and offset. The returns service
// publishes with JetStream: the capture bridge's stream acknowledges each publish
// (deduplicating by Nats-Msg-Id), and the bridge stores it in the topic at-least-once.
// It prints each step and a summary, then shuts down.
//
//	go run ./examples/natsbridge [-orders 30] [-returns 5]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
	"github.com/qxd-io/qxd/server/bridge"
)

func main() {
	n := flag.Int("orders", 30, "how many orders to publish")
	returns := flag.Int("returns", 5, "how many returns to publish with JetStream")
	timeout := flag.Duration("timeout", 60*time.Second, "give up if not done by then")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	_, err := run(ctx, os.Stdout, *n, *returns)
	cancel()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsbridge:", err)
		os.Exit(1)
	}
}

// delivery is one order as a service saw it.
type delivery struct {
	Subject   string
	Customer  string
	Order     string
	Partition string
	Offset    string
}

// summary is what each side saw.
type summary struct {
	Acks     []semantics.BridgeAck // the order service's replies, in publish order
	Returns  []*jetstream.PubAck   // the returns service's acknowledgements
	Shipping []delivery            // the legacy subscriber
	Billing  []delivery            // the attached handler
}

func customer(i int) string { return fmt.Sprintf("c%d", i%4) }

func run(ctx context.Context, w io.Writer, orders, returns int) (summary, error) {
	var sum summary
	dir, err := os.MkdirTemp("", "qxd-natsbridge-")
	if err != nil {
		return sum, err
	}
	defer os.RemoveAll(dir)
	cfg := server.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.Services = []server.Service{bridge.Service{}} // the node hosts bridges, as qxd server does
	node, err := server.Start(ctx, cfg)
	if err != nil {
		return sum, err
	}
	defer node.Close(context.Background())

	// Operations: a topic and two bridges ('qxd bridge create' does the same).
	client, err := qxd.Connect(ctx, node.ClientURL())
	if err != nil {
		return sum, err
	}
	defer client.Close()
	admin := client.Admin()
	if _, err := admin.CreateTopic(ctx, "orders", qxd.TopicConfig{Partitions: 3}); err != nil {
		return sum, err
	}
	for _, b := range []qxd.Bridge{
		// The third token of orders.created.<customer> is the key: one customer's
		// orders stay in one partition, in order.
		qxd.IngestBridge("orders-in", "orders.created.*", "orders", "token:3"),
		qxd.EgressBridge("orders-out", "orders", "shipping.orders.{key}", "reliable"),
		// JetStream publishers: the bridge creates the stream QXD_CAPTURE_returns-in on
		// orders.returned.* and takes its messages into the topic.
		qxd.CaptureBridge("returns-in", "orders.returned.*", "orders", "token:3"),
	} {
		if _, err := admin.CreateBridge(ctx, b); err != nil {
			return sum, err
		}
		fmt.Fprintf(w, "bridge %s created\n", b.Name)
	}

	var mu sync.Mutex
	see := func(list *[]delivery, m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		*list = append(*list, delivery{Subject: m.Subject, Customer: m.Header.Get(semantics.HeaderKey), Order: string(m.Data),
			Partition: m.Header.Get(semantics.HeaderPartition), Offset: m.Header.Get(semantics.HeaderOffset)})
	}

	// The shipping service: plain nats.go, unchanged.
	shipping, err := nats.Connect(node.ClientURL())
	if err != nil {
		return sum, err
	}
	defer shipping.Close()
	if _, err := shipping.QueueSubscribe("shipping.orders.*", "shipping", func(m *nats.Msg) {
		see(&sum.Shipping, m)
	}); err != nil {
		return sum, err
	}
	if err := shipping.Flush(); err != nil {
		return sum, err
	}

	// The billing service's existing handler, now a consumer group member of the topic.
	billingHandler := func(m *nats.Msg) { see(&sum.Billing, m) }
	billing, err := client.SubscribeHandler(ctx, "billing", "orders", billingHandler)
	if err != nil {
		return sum, err
	}
	defer billing.Close()

	// The order service: plain nats.go, unchanged; Request waits for the record to be stored.
	orderSvc, err := nats.Connect(node.ClientURL())
	if err != nil {
		return sum, err
	}
	defer orderSvc.Close()
	for i := range orders {
		reply, err := orderSvc.RequestWithContext(ctx, "orders.created."+customer(i), fmt.Appendf(nil, "order-%d", i))
		if err != nil {
			return sum, fmt.Errorf("publish order %d: %w", i, err)
		}
		var ack semantics.BridgeAck
		if err := json.Unmarshal(reply.Data, &ack); err != nil {
			return sum, err
		}
		if ack.Error != nil {
			return sum, fmt.Errorf("order %d not stored: %w", i, ack.Error.Err())
		}
		sum.Acks = append(sum.Acks, ack)
		fmt.Fprintf(w, "order service: order-%d of %s stored at %s/%d offset %d\n", i, customer(i), ack.Topic, ack.Partition, ack.Offset)
	}

	// The returns service: nats.go JetStream, unchanged; the stream acknowledges each
	// publish, and a retry with the same message id is stored once.
	returnsSvc, err := nats.Connect(node.ClientURL())
	if err != nil {
		return sum, err
	}
	defer returnsSvc.Close()
	js, err := jetstream.New(returnsSvc)
	if err != nil {
		return sum, err
	}
	for i := range returns {
		id := fmt.Sprintf("return-%d", i)
		ack, err := js.Publish(ctx, "orders.returned."+customer(i), []byte(id), jetstream.WithMsgID(id))
		if err != nil {
			return sum, fmt.Errorf("publish return %d: %w", i, err)
		}
		sum.Returns = append(sum.Returns, ack)
		fmt.Fprintf(w, "returns service: %s of %s acknowledged by stream %s (sequence %d)\n", id, customer(i), ack.Stream, ack.Sequence)
	}

	// Wait until both services saw every order and return.
	for {
		mu.Lock()
		done := len(sum.Shipping) >= orders+returns && len(sum.Billing) >= orders+returns
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-ctx.Done():
			return sum, errors.New("the services did not see every order and return in time")
		case <-time.After(20 * time.Millisecond):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, d := range sum.Shipping {
		fmt.Fprintf(w, "shipping service: %s on %s (partition %s, offset %s)\n", d.Order, d.Subject, d.Partition, d.Offset)
	}
	fmt.Fprintf(w, "summary: %d orders and %d returns published, %d shipped, %d billed\n", len(sum.Acks), len(sum.Returns), len(sum.Shipping), len(sum.Billing))
	return sum, nil
}
