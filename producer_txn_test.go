package qxd_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// readIsolated reads partition p of topic from offset 0 through the node's fetch
// service, read-committed or not, and returns the values an application sees.
func readIsolated(ctx context.Context, t *testing.T, n *server.Node, topic string, p int32, committed bool) []string {
	t.Helper()
	r, err := n.Fetcher().Fetch(ctx, server.FetchRequest{Topic: topic, Partition: p, ReadCommitted: committed})
	if err != nil {
		t.Fatalf("fetch %s/%d (read committed %v): %v", topic, p, committed, err)
	}
	values := []string{}
	for _, b := range r.Batches {
		h, err := semantics.ParseBatchHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if h.Control() {
			continue
		}
		recs, err := semantics.DecodeRecords(nil, b, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			aborted := false
			for _, a := range r.Aborted {
				if committed && a.ProducerID == h.ProducerID && rec.Offset >= a.FirstOffset && rec.Offset <= a.LastOffset {
					aborted = true
				}
			}
			if !aborted {
				values = append(values, string(rec.Value))
			}
		}
	}
	return values
}

func newTxnProducer(t *testing.T, c *qxd.Client, id string) *qxd.Producer {
	t.Helper()
	return qxdtest.NewProducer(t, c, qxd.TransactionalID(id), qxd.Linger(time.Millisecond))
}

// beginValues opens a transaction of p and produces values in it to partition 0
// of topic.
func beginValues(ctx context.Context, t *testing.T, p *qxd.Producer, topic string, values ...string) {
	t.Helper()
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceValues(ctx, t, p, topic, values...)
}

func produceValues(ctx context.Context, t *testing.T, p *qxd.Producer, topic string, values ...string) {
	t.Helper()
	for _, v := range values {
		if err := p.Produce(ctx, &qxd.Record{Topic: topic, Partition: 0, Value: []byte(v)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestTxnProducerCommitAndAbort: a transaction's records are invisible to
// read-committed reads until it commits; an aborted one's never show; records
// outside a transaction are refused.
func TestTxnProducerCommitAndAbort(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	qxdtest.CreateTopic(t, c, "txn-sdk", qxd.TopicConfig{Partitions: 1})
	p := newTxnProducer(t, c, "sdk-1")

	if err := p.Produce(ctx, &qxd.Record{Topic: "txn-sdk", Value: []byte("x")}, nil); !errors.Is(err, qxd.ErrNoTransaction) {
		t.Fatalf("produce outside a transaction: %v, want ErrNoTransaction", err)
	}
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.BeginTransaction(); !errors.Is(err, qxd.ErrTransactionOpen) {
		t.Fatalf("second BeginTransaction: %v, want ErrTransactionOpen", err)
	}
	produceValues(ctx, t, p, "txn-sdk", "a", "b", "c")
	if got := readIsolated(ctx, t, n, "txn-sdk", 0, true); len(got) != 0 {
		t.Fatalf("read committed before the commit: %q, want nothing", got)
	}
	if got := readIsolated(ctx, t, n, "txn-sdk", 0, false); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("read uncommitted before the commit: %q, want a b c", got)
	}
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readIsolated(ctx, t, n, "txn-sdk", 0, true); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("read committed after the commit: %q, want a b c", got)
	}

	beginValues(ctx, t, p, "txn-sdk", "x", "y")
	if err := p.AbortTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	beginValues(ctx, t, p, "txn-sdk", "d")
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readIsolated(ctx, t, n, "txn-sdk", 0, true); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("read committed after an abort and a commit: %q, want a b c d", got)
	}
	if got := readIsolated(ctx, t, n, "txn-sdk", 0, false); !slices.Equal(got, []string{"a", "b", "c", "x", "y", "d"}) {
		t.Fatalf("read uncommitted: %q, want a b c x y d", got)
	}
	if err := p.CommitTransaction(ctx); !errors.Is(err, qxd.ErrNoTransaction) {
		t.Fatalf("commit with no transaction open: %v, want ErrNoTransaction", err)
	}
}

// TestTxnProducerZombieFenced: a second producer with the same transactional id
// fences the first: the first's open transaction is aborted, and its records and
// its commit fail.
func TestTxnProducerZombieFenced(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	qxdtest.CreateTopic(t, c, "txn-zombie", qxd.TopicConfig{Partitions: 1})
	zombie := newTxnProducer(t, c, "zombie")
	beginValues(ctx, t, zombie, "txn-zombie", "old")

	fresh := newTxnProducer(t, c, "zombie")
	fenced := func(err error) bool {
		return errors.Is(err, qxd.ErrProducerFenced) || errors.Is(err, qxd.ErrInvalidProducerEpoch)
	}
	if err := zombie.ProduceSync(ctx, &qxd.Record{Topic: "txn-zombie", Partition: 0, Value: []byte("late")}); !fenced(err) {
		t.Fatalf("the zombie's produce: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	if err := zombie.CommitTransaction(ctx); err == nil {
		t.Fatal("the zombie's commit succeeded, want it refused")
	}
	beginValues(ctx, t, fresh, "txn-zombie", "new")
	if err := fresh.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readIsolated(ctx, t, n, "txn-zombie", 0, true); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("read committed: %q, want only the new producer's record", got)
	}
}

// TestTxnProducerOffsetsOnCommit: offsets sent to a transaction are stored in the
// group when it commits, and dropped when it aborts.
func TestTxnProducerOffsetsOnCommit(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	qxdtest.CreateTopic(t, c, "txn-in", qxd.TopicConfig{Partitions: 1})
	qxdtest.CreateTopic(t, c, "txn-out", qxd.TopicConfig{Partitions: 1})
	cons := qxdtest.NewConsumer(t, c, qxd.Group("txn-g"), qxd.AutoCommit(0))
	if err := cons.Subscribe(ctx, "txn-in"); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, cons, 1)
	in := qxd.TopicPartition{Topic: "txn-in", Partition: 0}
	committed := func() int64 {
		t.Helper()
		got, err := cons.Committed(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := got[in]; ok {
			return o.Offset
		}
		return -1
	}
	p := newTxnProducer(t, c, "offsets")

	beginValues(ctx, t, p, "txn-out", "1")
	if err := p.SendOffsetsToTransaction(ctx, cons, map[qxd.TopicPartition]qxd.OffsetAndMetadata{in: {Offset: 5}}); err != nil {
		t.Fatal(err)
	}
	if o := committed(); o != -1 {
		t.Fatalf("committed offset %d before the commit, want none", o)
	}
	if err := p.AbortTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if o := committed(); o != -1 {
		t.Fatalf("committed offset %d after an abort, want none", o)
	}

	beginValues(ctx, t, p, "txn-out", "2")
	if err := p.SendOffsetsToTransaction(ctx, cons, map[qxd.TopicPartition]qxd.OffsetAndMetadata{in: {Offset: 7}}); err != nil {
		t.Fatal(err)
	}
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if o := committed(); o != 7 {
		t.Fatalf("committed offset %d after the commit, want 7", o)
	}
}

// TestTxnProducerAddsPartitionsTogether: the partitions whose first batches of a
// transaction are ready while an AddPartitions request is in flight go to the
// coordinator together in the next request, not one request each.
func TestTxnProducerAddsPartitionsTogether(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	const parts, txns = 8, 5
	qxdtest.CreateTopic(t, c, "txn-adds", qxd.TopicConfig{Partitions: parts})
	// Every request to the coordinator reaches this subscription too.
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var adds atomic.Int64
	sub, err := nc.Subscribe(semantics.TxnAddPartitions+".>", func(*nats.Msg) { adds.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	p, err := c.NewProducer(qxd.TransactionalID("adds-1"), qxd.Linger(20*time.Millisecond),
		qxd.RecordPartition())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	for range txns {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range parts {
			if err := p.Produce(ctx, &qxd.Record{Topic: "txn-adds", Partition: int32(i), Value: []byte("v")}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.CommitTransaction(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range int32(parts) {
		if got := readIsolated(ctx, t, n, "txn-adds", i, true); len(got) != txns {
			t.Errorf("partition %d: %d committed records, want %d", i, len(got), txns)
		}
	}
	// One request a partition would be parts×txns; batched, about two a
	// transaction (the first partition's, then the others').
	if got := adds.Load(); got > parts*txns/2 {
		t.Errorf("%d AddPartitions requests for %d transactions over %d partitions: want at most %d", got, txns, parts, parts*txns/2)
	}
}
