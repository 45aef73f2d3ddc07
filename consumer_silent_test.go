package qxd_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// silentNodeClient connects a client to nodes[1] through a TCP relay, with the
// other nodes to move to, and pings so rare (every minute) that only the client's
// own check of its node can find it silent within the tests' bounds. The client
// does not add the URLs the nodes advertise to those it was given: nodes[1] is
// reached through the relay only (under load a client that had moved once went
// back to nodes[1] by its own URL, which the relay does not silence). Its log
// messages go to the test's log, and to seen, if not nil.
func silentNodeClient(t *testing.T, nodes []*server.Node, seen func(string)) (*qxd.Client, *relay) {
	t.Helper()
	relay := startRelay(t, nodes[1].ClientURL()[len("nats://"):])
	urls := "nats://" + relay.addr() + "," + nodes[0].ClientURL() + "," + nodes[2].ClientURL()
	ctx := qxdtest.Context(t, 30*time.Second)
	c := connectTo(ctx, t, urls, nodes[1], qxd.ClientPing(time.Minute, 2),
		qxd.NATSOptions(nats.ReconnectWait(50*time.Millisecond), nats.IgnoreDiscoveredServers()),
		qxd.Logger(slog.New(countHandler{func(msg string) {
			t.Logf("%v: %s", time.Now().Format("15:04:05.000"), msg)
			if seen != nil {
				seen(msg)
			}
		}})))
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
	produceStored(ctx, t, admin, topic, records, 4<<10)

	var stalled atomic.Int32
	c, relay := silentNodeClient(t, nodes, func(msg string) {
		if strings.Contains(msg, "partition read stalled") {
			stalled.Add(1)
		}
	})
	// A read pulls about 1 MiB ahead (the least it asks for: one batch of the
	// topic's largest), and hands at most 64 batches (about 4 MiB here) to the
	// consumer's buffer for Poll: short of the 8 MB stored, so the read cannot
	// have fetched the whole partition before the freeze and still awaits
	// batches after it (with the default 32 MiB, in a CI run it had, and with
	// nothing left to await the client never checked its node).
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
				t.Errorf("poll at offset %d: %v (%s)", next, err, highWatermark(cons))
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

// TestGroupJoinLostWithMove loses a member's first join with the connection it
// was sent on — the request itself, or only its answer, after the coordinator
// made the member — and the client moves to another node: it finds its node
// silent and leaves it (nats.go fails the requests awaiting answers then), or
// the connection closes (nats.go keeps them waiting). The join is sent again on
// the new connection, as the same member, and the member is assigned its
// partition within a few seconds. A first join sent again without its key added
// a second member, and the group waited for the first until its session timeout
// (20 s here); a join waiting for an answer lost with a closed connection waited
// its whole timeout (a minute). Under load a check that finds a busy node silent
// moves the client so while it joins.
func TestGroupJoinLostWithMove(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		passed bool // the join reaches the coordinator; its answer is lost
		cut    bool // then, once it is answered, the connection closes before the client finds its node silent
	}{
		{name: "request lost"},
		{name: "answer lost", passed: true},
		{name: "answer lost and connection closed", passed: true, cut: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
			ctx := qxdtest.Context(t, 120*time.Second)
			admin := qxdtest.Connect(t, nodes[0])
			const topic, group = "lost-join", "lost-join"
			qxdtest.CreateTopic(t, admin, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})

			c, relay := silentNodeClient(t, nodes, nil)
			relay.silenceAt(semantics.GroupSubject(semantics.GroupJoin, group), tc.passed)
			cons := qxdtest.NewConsumer(t, c, qxd.Group(group), qxd.SessionTimeout(20*time.Second),
				qxd.HeartbeatInterval(500*time.Millisecond))
			start := time.Now()
			if err := cons.Subscribe(ctx, topic); err != nil {
				t.Fatal(err)
			}
			for tc.cut {
				// Until the coordinator made the member, the group does not
				// exist; it answers the join as the group awaits the leader's
				// assignment.
				if d, err := admin.Admin().DescribeGroup(ctx, group); err == nil && d.Generation > 0 {
					relay.cut()
					t.Logf("closed the connection %v after the join", time.Since(start).Round(time.Millisecond))
					break
				}
				if time.Since(start) > 10*time.Second {
					t.Fatal("the coordinator made no member within 10 s")
				}
				time.Sleep(5 * time.Millisecond)
			}
			const bound = 10 * time.Second
			for len(cons.Assigned()) != 1 {
				if time.Since(start) > bound {
					t.Fatalf("assigned %v %v after the join, want partition 0 (connected to %s)",
						cons.Assigned(), time.Since(start).Round(time.Millisecond), c.Conn().ConnectedServerName())
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("assigned %v after the join, on %s", time.Since(start).Round(time.Millisecond), c.Conn().ConnectedServerName())
			if got := c.Conn().ConnectedServerName(); got == nodes[1].Name() {
				t.Fatalf("client still on %s, whose relay is silent", got)
			}
			d, err := admin.Admin().DescribeGroup(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Members) != 1 {
				t.Fatalf("group has %d members, want one: %+v", len(d.Members), d.Members)
			}
		})
	}
}

// produceStored produces records records of size bytes to partition 0 of topic
// in batches of 64 KiB, and fails t unless the partition's leader holds them all
// then. The first is produced alone, so that the partition's writer is up and
// has stored the producer's first sequence before batches are pipelined: a
// writer that first hears of an idempotent producer at a later sequence (its
// first batches went unanswered and were resent after later ones were stored)
// admits it there, and answers the resent first batches as duplicates, stored,
// which they are not (the producer acknowledges their records without an
// offset). A read of the partition then waits for records it does not hold.
func produceStored(ctx context.Context, t *testing.T, c *qxd.Client, topic string, records, size int) {
	t.Helper()
	p := qxdtest.NewProducer(t, c, qxd.BatchBytes(64<<10))
	value := make([]byte, size)
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Key: []byte("0"), Value: value}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var failed, noOffset int
	var first error
	for i := 1; i < records; i++ {
		err := p.Produce(ctx, &qxd.Record{Topic: topic, Key: fmt.Appendf(nil, "%d", i), Value: value}, func(r *qxd.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failed++
				if first == nil {
					first = err
				}
			case r.Offset < 0:
				noOffset++ // a duplicate: stored before, or so the writer says
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The leader's high watermark, not a replica's (which may be behind).
	offs, err := partition.NewReader(c.Conn(), topic, 0, false).ReadOffsets(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if failed > 0 || offs.HighWatermark != int64(records) {
		t.Fatalf("produce: of %d records, %d failed (first: %v) and %d were acknowledged without an offset; the partition's leader holds offsets %d to %d",
			records, failed, first, noOffset, offs.LogStart, offs.HighWatermark-1)
	}
}

// highWatermark describes cons's partitions' high watermarks, for a failed read.
func highWatermark(cons *qxd.Consumer) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lags, err := cons.Lag(ctx)
	if err != nil {
		return fmt.Sprintf("high watermark unknown: %v", err)
	}
	var b strings.Builder
	for _, l := range lags {
		fmt.Fprintf(&b, "partition %d: high watermark %d, position %d; ", l.Partition, l.HighWatermark, l.Position)
	}
	return strings.TrimSuffix(b.String(), "; ")
}
