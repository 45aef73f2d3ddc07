package qxd_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestReadWatchdogJudgesByTheLeader runs the watchdog of a partition read (what a
// read does after fetchQuiet without records) on a single-replica topic, with real
// JetStream consumers standing for the read's:
//
//   - deliveries held: the consumer delivered batches the read has not handled yet
//     (in transit, as under heavy load). The read is slow, not damaged: it waits.
//     It used to end with a final "its stored data is damaged" error, as GetIntact
//     asks no other replica of a single-replica stream. Held for a second spell,
//     they are taken as lost on the way: the read restarts, not final.
//   - a copy behind: the consumer has delivered everything its copy holds (nothing
//     pending), and the stream's leader holds more, as a read whose consumer sits
//     on a follower that fell behind. The read restarts (a new consumer), and the
//     error is not final.
//   - a consumer that delivered nothing while it has more pending: restart, not
//     final.
//   - nothing new: the read handed over the leader's last batch: it waits.
func TestReadWatchdogJudgesByTheLeader(t *testing.T) {
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "wd", qxd.TopicConfig{Partitions: 1, Replicas: 1})
	qxdtest.CreateTopic(t, c, "wdbehind", qxd.TopicConfig{Partitions: 1, Replicas: 1})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(ctx) })
	const batches = 5
	for i := range batches { // one batch per call
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "wd", Value: fmt.Appendf(nil, "v%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "wdbehind", Value: []byte("v0")}); err != nil {
		t.Fatal(err)
	}
	js := qxdtest.JetStream(t, n)
	stream := semantics.StreamName("wd", 0)
	si, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if last := si.CachedInfo().State.LastSeq; last != batches {
		t.Fatalf("stream %s holds sequences to %d, want %d (one batch per record)", stream, last, batches)
	}
	read := func(t *testing.T, stream string, start uint64) (jetstream.Consumer, string) {
		t.Helper()
		cons, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
			AckPolicy: jetstream.AckNonePolicy, Replicas: 1, MemoryStorage: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		host := ""
		if info := cons.CachedInfo(); info.Cluster != nil {
			host = info.Cluster.Leader
		}
		return cons, host
	}
	qc := qxdtest.NewConsumer(t, c)
	tp := qxd.TopicPartition{Topic: "wd", Partition: 0}
	watchdog := func(t *testing.T, cons jetstream.Consumer, host string, next int64, lastStream uint64) func() (bool, error, bool) {
		t.Helper()
		check, err := qxd.Watchdog(ctx, qc, tp, cons, host, next, lastStream)
		if err != nil {
			t.Fatal(err)
		}
		return check
	}

	t.Run("deliveries held", func(t *testing.T) {
		cons, host := read(t, stream, 1)
		b, err := cons.FetchNoWait(batches)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for range b.Messages() {
			got++
		}
		if got != batches {
			t.Fatalf("fetched %d messages, want %d", got, batches)
		}
		check := watchdog(t, cons, host, 0, 0)
		wait, err, fatal := check()
		if !wait || err != nil || fatal {
			t.Fatalf("watchdog with %d batches delivered and not yet handled: wait %v, err %v (final %v); want it to wait", batches, wait, err, fatal)
		}
		// Still not handled a spell later: lost on the way, the read restarts.
		wait, err, fatal = check()
		if wait || err == nil || fatal || errors.Is(err, qxd.ErrCorruptMessage) {
			t.Fatalf("watchdog with deliveries held for a second spell: wait %v, err %v (final %v); want a restart, not final", wait, err, fatal)
		}
	})
	t.Run("a copy behind", func(t *testing.T) {
		// A consumer of a stream holding one batch, started after it: it has
		// delivered all its copy holds, one batch, as the read has.
		cons, host := read(t, semantics.StreamName("wdbehind", 0), 2)
		wait, err, fatal := watchdog(t, cons, host, 1, 1)()
		if wait || err == nil || fatal || errors.Is(err, qxd.ErrCorruptMessage) {
			t.Fatalf("watchdog with a consumer behind the stream's leader: wait %v, err %v (final %v); want a restart, not final", wait, err, fatal)
		}
	})
	t.Run("nothing delivered", func(t *testing.T) {
		cons, host := read(t, stream, 1)
		wait, err, fatal := watchdog(t, cons, host, 0, 0)()
		if wait || err == nil || fatal {
			t.Fatalf("watchdog with a consumer that delivered nothing: wait %v, err %v (final %v); want a restart, not final", wait, err, fatal)
		}
	})
	t.Run("nothing new", func(t *testing.T) {
		cons, host := read(t, stream, batches+1)
		wait, err, fatal := watchdog(t, cons, host, batches, batches)()
		if !wait || err != nil || fatal {
			t.Fatalf("watchdog of a read at the stream's end: wait %v, err %v (final %v); want it to wait", wait, err, fatal)
		}
	})
}
