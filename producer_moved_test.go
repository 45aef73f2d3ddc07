package qxd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestProducerMovedAfterElectionResendsToLeader is a producer on a cut-off node
// whose partition elects a leader before its client moves: the client's node goes
// silent (a frozen TCP relay), the records sent meanwhile get no answer, the
// partition's stream elects a leader, whose advisory the client never gets, and
// the client moves to another node (its own check: a batch waited 0.3 s, its
// node answered no ping). There, silent members of the writers' queue group
// stand for the cut-off node's writer, whose interest the other nodes keep until
// they drop their routes to it: NATS hands a request on the queue subject to
// one of them nearly every time. The producer must resend what the move left
// unanswered to the writer of the node that leads the partition now: every
// record answered within a few seconds of the move (the request timeout is
// 30 s), stored once, in order.
func TestProducerMovedAfterElectionResendsToLeader(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 120*time.Second)
	admin := qxdtest.Connect(t, nodes[0])
	const topic = "moved-elected"
	qxdtest.CreateTopic(t, admin, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	stream := semantics.StreamName(topic, 0)

	// The client reaches nodes[1] through the relay, and moves to nodes[0]. Its
	// pings are rare: only its check of a stalled batch moves it.
	relay := startRelay(t, nodes[1].ClientURL()[len("nats://"):])
	urls := "nats://" + relay.addr() + "," + nodes[0].ClientURL() + "," + nodes[2].ClientURL()
	c := connectTo(ctx, t, urls, nodes[1], qxd.ClientPing(time.Minute, 3))
	p := warmProducer(ctx, t, c, topic)
	const warm = 5 // the records warmProducer stored

	relay.freeze()

	// The election, while the client hears nothing.
	nc, err := nats.Connect(nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	stepDownAndElect(ctx, t, nc, stream, electedLeaders(t, nc, stream))

	// The old writer's lingering interest, on the node the client moves to.
	const silent = 30
	for range silent {
		if _, err := nc.QueueSubscribe(semantics.WriterSubject(topic, 0), "writer", func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the other nodes learn the subscriptions

	const n = 5
	done := make(chan error, n)
	for i := range n {
		if err := p.Produce(ctx, &qxd.Record{Topic: topic, Value: fmt.Appendf(nil, "moved-%d", i)}, func(_ *qxd.Record, err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for c.Conn().ConnectedServerName() == nodes[1].Name() || !c.Conn().IsConnected() {
		if ctx.Err() != nil {
			t.Fatal("the client did not leave its silent node")
		}
		time.Sleep(10 * time.Millisecond)
	}
	moved := time.Now()
	t.Logf("the client moved to %s", c.Conn().ConnectedServerName())

	// Generous: a lookup and a resend take milliseconds; a resend on the queue
	// subject waits the request timeout.
	const bound = 4 * time.Second
	timeout := time.After(bound)
	for i := range n {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("a record the move left unanswered failed: %v", err)
			}
		case <-timeout:
			t.Fatalf("%d of %d records the move left unanswered were not acknowledged within %v of the move: the producer resent them to the queue subject and waits for its request timeout (%v)",
				n-i, n, bound, electedRequestTimeout)
		}
	}
	t.Logf("all acknowledged %v after the move", time.Since(moved).Round(time.Millisecond))

	recs := readTopic(t, c, topic, 1, warm+n)
	if len(recs) != warm+n {
		t.Fatalf("read %d records, want %d", len(recs), warm+n)
	}
	for i, r := range recs {
		want := fmt.Sprintf("warm-%d", i)
		if i >= warm {
			want = fmt.Sprintf("moved-%d", i-warm)
		}
		if r.Offset != int64(i) || string(r.Value) != want {
			t.Errorf("record %d: offset %d, value %q; want offset %d, value %q", i, r.Offset, r.Value, i, want)
		}
	}
	ctx2, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx2, qxd.Assignment{Topic: topic, Partition: 0, Offset: qxd.At(int64(warm + n))}); err != nil {
		t.Fatal(err)
	}
	if extra, _ := cons.Poll(ctx2); len(extra) > 0 {
		t.Errorf("%d records after the %d produced, the first %q", len(extra), warm+n, extra[0].Value)
	}
}
