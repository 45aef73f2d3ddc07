package qxd_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// pollValues polls cons until it has returned want values, or for 15 seconds,
// and returns what it got.
func pollValues(ctx context.Context, t *testing.T, cons *qxd.Consumer, want int) []string {
	t.Helper()
	return pollFor(ctx, cons, want, 15*time.Second)
}

func pollFor(ctx context.Context, cons *qxd.Consumer, want int, d time.Duration) []string {
	got := []string{}
	deadline := time.Now().Add(d)
	for len(got) < want && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		recs, _ := cons.Poll(pctx)
		cancel()
		for _, r := range recs {
			got = append(got, string(r.Value))
		}
	}
	return got
}

// quiet polls cons for a while and fails if it returns anything.
func quiet(ctx context.Context, t *testing.T, cons *qxd.Consumer, what string) {
	t.Helper()
	if got := pollFor(ctx, cons, 1, 2*time.Second); len(got) != 0 {
		t.Fatalf("%s: the read-committed consumer returned %q, want nothing", what, got)
	}
}

// TestReadCommittedConsumer: a read-committed consumer stops at the last stable
// offset (an open transaction holds back the records after it, a plain record
// included), returns a committed transaction's records, never an aborted one's;
// a read-uncommitted consumer returns everything.
func TestReadCommittedConsumer(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 2*time.Minute)
	const topic = "txn-rc-sdk"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	at := qxd.Assignment{Topic: topic, Partition: 0, Offset: qxd.AtStart()}
	rc := qxdtest.NewConsumer(t, c, qxd.Isolation(qxd.ReadCommitted))
	ru := qxdtest.NewConsumer(t, c)
	for _, cons := range []*qxd.Consumer{rc, ru} {
		if err := cons.Assign(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	tx := newTxnProducer(t, c, "rc-sdk")
	plain := qxdtest.NewProducer(t, c, qxd.Linger(time.Millisecond))

	// An aborted transaction, then an open one with a plain record after it.
	beginValues(ctx, t, tx, topic, "aborted-1", "aborted-2")
	if err := tx.AbortTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	beginValues(ctx, t, tx, topic, "t1", "t2")
	if err := plain.ProduceSync(ctx, &qxd.Record{Topic: topic, Partition: 0, Value: []byte("plain")}); err != nil {
		t.Fatal(err)
	}
	if got := pollValues(ctx, t, ru, 5); !slices.Equal(got, []string{"aborted-1", "aborted-2", "t1", "t2", "plain"}) {
		t.Fatalf("read uncommitted: %q", got)
	}
	quiet(ctx, t, rc, "during the open transaction")

	if err := tx.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if got := pollValues(ctx, t, rc, 3); !slices.Equal(got, []string{"t1", "t2", "plain"}) {
		t.Fatalf("read committed after the commit: %q, want t1 t2 plain", got)
	}
	beginValues(ctx, t, tx, topic, "aborted-3")
	if err := tx.AbortTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if err := plain.ProduceSync(ctx, &qxd.Record{Topic: topic, Partition: 0, Value: []byte("last")}); err != nil {
		t.Fatal(err)
	}
	if got := pollValues(ctx, t, rc, 1); !slices.Equal(got, []string{"last"}) {
		t.Fatalf("read committed after a second abort: %q, want last", got)
	}
}

// TestPositionPassesTransactionMarkers: a consumer's position moves past the
// transaction markers (and, read-committed, the aborted records) it reads, as a
// Kafka consumer's does, so a partition ending with a marker is read to its high
// watermark, read-committed or not.
func TestPositionPassesTransactionMarkers(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	const topic = "txn-pos"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	tx := newTxnProducer(t, c, "pos")
	beginValues(ctx, t, tx, topic, "a")
	if err := tx.CommitTransaction(ctx); err != nil { // a at 0, the marker at 1
		t.Fatal(err)
	}
	beginValues(ctx, t, tx, topic, "b")
	if err := tx.AbortTransaction(ctx); err != nil { // b at 2, the marker at 3
		t.Fatal(err)
	}
	for _, l := range []qxd.IsolationLevel{qxd.ReadUncommitted, qxd.ReadCommitted} {
		cons := qxdtest.NewConsumer(t, c, qxd.Isolation(l))
		if err := cons.Assign(ctx, qxd.Assignment{Topic: topic, Partition: 0, Offset: qxd.AtStart()}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		pos := int64(-1)
		for time.Now().Before(deadline) {
			pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			_, _ = cons.Poll(pctx)
			cancel()
			if pos, _ = cons.Position(topic, 0); pos == 4 {
				break
			}
		}
		if pos != 4 {
			t.Errorf("%s: position %d after reading the partition, want 4 (its high watermark, past the abort marker)", l, pos)
		}
	}
}

// TestReadCommittedConsumerCluster: in a cluster, a read-committed consumer
// connected to one node reads partitions led by the others (their leaders
// answer the last stable offsets; the other nodes stay silent).
func TestReadCommittedConsumerCluster(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 2*time.Minute)
	c, err := qxd.Connect(ctx, nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	const topic = "txn-rc-cluster"
	const parts = 3
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: parts, Replicas: 3})
	p, err := c.NewProducer(qxd.TransactionalID("rc-cluster"), qxd.RecordPartition(), qxd.Linger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	for _, commit := range []bool{false, true} {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range int32(parts) {
			v := map[bool]string{false: "aborted", true: "committed"}[commit]
			if err := p.Produce(ctx, &qxd.Record{Topic: topic, Partition: i, Value: []byte(v)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		end := p.AbortTransaction
		if commit {
			end = p.CommitTransaction
		}
		if err := end(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cons := qxdtest.NewConsumer(t, c, qxd.Isolation(qxd.ReadCommitted))
	var as []qxd.Assignment
	for i := range int32(parts) {
		as = append(as, qxd.Assignment{Topic: topic, Partition: i, Offset: qxd.AtStart()})
	}
	if err := cons.Assign(ctx, as...); err != nil {
		t.Fatal(err)
	}
	got := map[int32][]string{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < parts && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		recs, _ := cons.Poll(pctx)
		cancel()
		for _, r := range recs {
			got[r.Partition] = append(got[r.Partition], string(r.Value))
		}
	}
	for i := range int32(parts) {
		if !slices.Equal(got[i], []string{"committed"}) {
			t.Errorf("partition %d read committed across the cluster: %q, want committed", i, got[i])
		}
	}
}

// TestReadCommittedStartsAtLastStableOffset: a read-committed consumer starting
// at the end starts at the last stable offset, as a Kafka read_committed client's
// ListOffsets does, so a transaction open when it starts is read once it commits.
func TestReadCommittedStartsAtLastStableOffset(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	const topic = "txn-rc-end"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	p := newTxnProducer(t, c, "rc-end")
	beginValues(ctx, t, p, topic, "open-1", "open-2")
	cons := qxdtest.NewConsumer(t, c, qxd.Isolation(qxd.ReadCommitted))
	if err := cons.Assign(ctx, qxd.Assignment{Topic: topic, Partition: 0, Offset: qxd.AtEnd()}); err != nil {
		t.Fatal(err)
	}
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if got := pollValues(ctx, t, cons, 2); !slices.Equal(got, []string{"open-1", "open-2"}) {
		t.Fatalf("read committed after the commit: %q, want open-1 open-2", got)
	}
}

// openAfterPlain creates topic with one partition, stores three plain records
// (offsets 0-2), then two in a transaction of id left open (offsets 3 and 4), and
// returns the transactional producer.
func openAfterPlain(ctx context.Context, t *testing.T, c *qxd.Client, topic, id string) *qxd.Producer {
	t.Helper()
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	plain := qxdtest.NewProducer(t, c, qxd.Linger(time.Millisecond))
	produceValues(ctx, t, plain, topic, "a", "b", "c")
	tx := newTxnProducer(t, c, id)
	beginValues(ctx, t, tx, topic, "t1", "t2")
	return tx
}

// TestReadCommittedLag: a read-committed consumer's lag counts to the last stable
// offset, as Kafka's does (records of an open transaction are not readable yet),
// and it is at the end once it has read up to it; a read-uncommitted consumer's
// counts to the high watermark.
func TestReadCommittedLag(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	const topic = "txn-lag"
	tx := openAfterPlain(ctx, t, c, topic, "lag-1")

	at := qxd.Assignment{Topic: topic, Partition: 0, Offset: qxd.AtStart()}
	rc := qxdtest.NewConsumer(t, c, qxd.Isolation(qxd.ReadCommitted))
	ru := qxdtest.NewConsumer(t, c)
	for _, cons := range []*qxd.Consumer{rc, ru} {
		if err := cons.Assign(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	lagOf := func(cons *qxd.Consumer) qxd.PartitionLag {
		t.Helper()
		l, err := cons.Lag(ctx)
		if err != nil || len(l) != 1 {
			t.Fatalf("lag: %+v, %v", l, err)
		}
		return l[0]
	}
	if l := lagOf(ru); l.Lag != 5 || l.HighWatermark != 5 {
		t.Errorf("read-uncommitted lag %+v, want 5 to the high watermark 5", l)
	}
	if l := lagOf(rc); l.Lag != 3 || l.HighWatermark != 5 || l.AtEnd {
		t.Errorf("read-committed lag with a transaction open at 3: %+v, want 3 (to the last stable offset), not at the end", l)
	}
	if got := pollValues(ctx, t, rc, 3); len(got) != 3 {
		t.Fatalf("read-committed poll: %q, want a b c", got)
	}
	if l := lagOf(rc); l.Lag != 0 || !l.AtEnd {
		t.Errorf("read-committed lag at the last stable offset: %+v, want 0 and at the end", l)
	}
	if err := tx.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	// t1, t2 and the commit marker: the last stable offset is the high watermark.
	if l := lagOf(rc); l.Lag != 3 || l.HighWatermark != 6 || l.AtEnd {
		t.Errorf("read-committed lag after the commit: %+v, want 3 to the high watermark 6", l)
	}
}

// TestDescribeGroupReadCommittedLag: described read-committed, a group's lag
// counts from its committed offset to the last stable offset; described plainly,
// to the high watermark.
func TestDescribeGroupReadCommittedLag(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	const topic, group = "txn-group-lag", "rc-lag"
	tx := openAfterPlain(ctx, t, c, topic, "group-lag-1")
	admin := c.Admin()
	if _, err := admin.SeekGroup(ctx, group, topic, nil, qxd.At(1)); err != nil {
		t.Fatal(err)
	}
	row := func(d qxd.GroupDescription, err error) qxd.GroupPartition {
		t.Helper()
		if err != nil || len(d.Partitions) != 1 {
			t.Fatalf("describe %s: %+v, %v", group, d, err)
		}
		return d.Partitions[0]
	}
	if r := row(admin.DescribeGroup(ctx, group)); r.Lag != 4 || r.LastStableOffset != -1 {
		t.Errorf("described plainly: %+v, want lag 4 (to the high watermark 5), no last stable offset", r)
	}
	if r := row(admin.DescribeGroupIsolated(ctx, group, qxd.ReadCommitted)); r.Lag != 2 || r.LastStableOffset != 3 || r.HighWatermark != 5 {
		t.Errorf("described read-committed with a transaction open at 3: %+v, want lag 2 to the last stable offset 3", r)
	}
	if err := tx.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if r := row(admin.DescribeGroupIsolated(ctx, group, qxd.ReadCommitted)); r.Lag != 5 || r.LastStableOffset != 6 {
		t.Errorf("described read-committed after the commit: %+v, want lag 5 to the last stable offset 6", r)
	}
}
