package qxd_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// silentNodeClient connects a client to nodes[1] through a TCP relay, with the
// other nodes to move to, and pings so rare (every minute) that only the client's
// own check of its node can find it silent within the tests' bounds. Its log
// messages go to the test's log, and to seen, if not nil.
func silentNodeClient(t *testing.T, nodes []*server.Node, seen func(string)) (*qxd.Client, *silentRelay) {
	t.Helper()
	relay := startSilentRelay(t, nodes[1].ClientURL()[len("nats://"):])
	urls := "nats://" + relay.addr + "," + nodes[0].ClientURL() + "," + nodes[2].ClientURL()
	ctx := qxdtest.Context(t, 30*time.Second)
	c, err := qxd.Connect(ctx, urls, qxd.ClientPing(time.Minute, 2),
		qxd.NATSOptions(nats.DontRandomize(), nats.ReconnectWait(50*time.Millisecond)),
		qxd.Logger(slog.New(countHandler{func(msg string) {
			t.Logf("%v: %s", time.Now().Format("15:04:05.000"), msg)
			if seen != nil {
				seen(msg)
			}
		}})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if got := c.Conn().ConnectedServerName(); got != nodes[1].Name() {
		t.Fatalf("client connected to %s, want %s", got, nodes[1].Name())
	}
	return c, relay
}

// waitMoved waits until c is connected to another node than silent, and returns
// how long that took since frozen; an error after bound.
func waitMoved(c *qxd.Client, silent string, frozen time.Time, bound time.Duration) (time.Duration, error) {
	for c.Conn().ConnectedServerName() == silent || !c.Conn().IsConnected() {
		if time.Since(frozen) > bound {
			return 0, fmt.Errorf("client still on the silent node %s after %v (its pings, every minute, would find it after minutes)",
				silent, time.Since(frozen).Round(time.Millisecond))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(frozen), nil
}

// TestConsumerLeavesSilentNode freezes the connection of a plain consumer (the
// relay forwards nothing more, as a paused node looks to its clients) while its
// partition holds more than it has read: the read's next batch that does not
// come makes the client check its node and move, as a producer's unanswered
// batch does, and the read goes on through another node.
func TestConsumerLeavesSilentNode(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 120*time.Second)
	admin := qxdtest.Connect(t, nodes[0])
	const topic, records = "silent-read", 2000
	qxdtest.CreateTopic(t, admin, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	p := qxdtest.NewProducer(t, admin, qxd.BatchBytes(64<<10))
	value := make([]byte, 4<<10)
	for i := range records {
		if err := p.Produce(ctx, &qxd.Record{Topic: topic, Key: fmt.Appendf(nil, "%d", i), Value: value}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	var stalled atomic.Int32
	c, relay := silentNodeClient(t, nodes, func(msg string) {
		if strings.Contains(msg, "partition read stalled") {
			stalled.Add(1)
		}
	})
	// A read-ahead of about 1 MiB (the least a read asks for: one batch of the
	// topic's largest) of the 8 MB stored, so the read cannot have fetched the
	// whole partition before the freeze and still awaits batches after it (in a
	// CI run it had, and with nothing left to await the client never checked
	// its node).
	cons := qxdtest.NewConsumer(t, c, qxd.MaxPollRecords(10), qxd.FetchMaxBytes(1<<20))
	if err := cons.Assign(ctx, qxd.Assignment{Topic: topic, Partition: 0, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	var next int64
	read := func() {
		t.Helper()
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("poll at offset %d: %v", next, err)
		}
		for _, r := range recs {
			if r.Offset != next {
				t.Fatalf("read offset %d, want %d", r.Offset, next)
			}
			next++
		}
	}
	read()
	relay.freeze()
	frozen := time.Now()
	t.Logf("%v: froze the relay at offset %d", frozen.Format("15:04:05.000"), next)
	// The consumer reads on meanwhile, as an application does: what the client
	// holds, then it awaits the next batch.
	stop := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for next < records {
			select {
			case <-stop:
				return
			default:
			}
			recs, err := cons.Poll(ctx)
			if err != nil {
				t.Errorf("poll at offset %d: %v", next, err)
				return
			}
			for _, r := range recs {
				if r.Offset != next {
					t.Errorf("read offset %d, want %d", r.Offset, next)
					return
				}
				next++
			}
		}
	}()
	moved, err := waitMoved(c, nodes[1].Name(), frozen, 30*time.Second)
	if err != nil {
		close(stop)
		t.Fatal(err)
	}
	t.Logf("client moved to %s %v after its node went silent", c.Conn().ConnectedServerName(), moved.Round(time.Millisecond))
	<-readDone
	t.Logf("read all %d records %v after the relay froze", records, time.Since(frozen).Round(time.Millisecond))
	// What the read's consumer sent on the lost connection is lost with it: the
	// read starts again when the connection is back, not when its watchdog finds
	// it stalled seconds later.
	if n := stalled.Load(); n > 0 {
		t.Errorf("the read went on only after its watchdog found it stalled (%d times)", n)
	}
}

// TestGroupMemberLeavesSilentNode freezes the connection of a group member that
// has read everything: its next heartbeat, unanswered, makes the client check its
// node and move, and the member keeps its partition.
func TestGroupMemberLeavesSilentNode(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 120*time.Second)
	admin := qxdtest.Connect(t, nodes[0])
	const topic = "silent-member"
	qxdtest.CreateTopic(t, admin, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})

	c, relay := silentNodeClient(t, nodes, nil)
	cons := qxdtest.NewConsumer(t, c, qxd.Group("silent"), qxd.SessionTimeout(20*time.Second),
		qxd.HeartbeatInterval(500*time.Millisecond))
	if err := cons.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, cons, 1)
	gen, _ := cons.Generation()
	relay.freeze()
	frozen := time.Now()
	t.Logf("%v: froze the relay", frozen.Format("15:04:05.000"))
	moved, err := waitMoved(c, nodes[1].Name(), frozen, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("client moved to %s %v after its node went silent", c.Conn().ConnectedServerName(), moved.Round(time.Millisecond))

	// The member goes on: a record produced now reaches it, in the same generation.
	p := qxdtest.NewProducer(t, admin)
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	recs, err := cons.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || string(recs[0].Value) != "after" {
		t.Fatalf("polled %d records after the move, want the one produced", len(recs))
	}
	if got, _ := cons.Generation(); got != gen {
		t.Logf("the group rebalanced meanwhile: generation %d, then %d", gen, got)
	}
}
