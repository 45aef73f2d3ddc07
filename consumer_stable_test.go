package qxd_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestReadCommittedMemberWaitsForTransactionOffsets: a read-committed group
// member given a partition whose offset an open transaction holds (sent to it by
// the partition's previous owner) does not start from the offset committed
// before: it waits for the transaction, then starts from the transaction's
// offset if it commits, or from the old one if it aborts (Kafka's OffsetFetch
// require_stable). Else it reads again what the transaction consumed.
// Committed on a read-committed consumer waits for the transaction too.
func TestReadCommittedMemberWaitsForTransactionOffsets(t *testing.T) {
	t.Parallel()
	for _, commit := range []bool{true, false} {
		name := map[bool]string{true: "commit", false: "abort"}[commit]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n := qxdtest.StartNode(t)
			c := qxdtest.Connect(t, n)
			ctx := qxdtest.Context(t, 2*time.Minute)
			in := qxd.TopicPartition{Topic: "stable-in", Partition: 0}
			qxdtest.CreateTopic(t, c, in.Topic, qxd.TopicConfig{Partitions: 1})
			qxdtest.CreateTopic(t, c, "stable-out", qxd.TopicConfig{Partitions: 1})
			plain, err := c.NewProducer(qxd.Linger(time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = plain.Close(context.Background()) })
			for i := range 10 {
				if err := plain.ProduceSync(ctx, &qxd.Record{Topic: in.Topic, Partition: 0, Value: []byte(strconv.Itoa(i))}); err != nil {
					t.Fatal(err)
				}
			}

			// The first owner commits offset 2, then sends offset 8 to a
			// transaction and leaves the group with the transaction open.
			a := qxdtest.NewConsumer(t, c, qxd.Group("stable-g"), qxd.AutoCommit(0), qxd.Isolation(qxd.ReadCommitted))
			if err := a.Subscribe(ctx, in.Topic); err != nil {
				t.Fatal(err)
			}
			waitAssigned(t, a, 1)
			if err := a.CommitOffsets(ctx, map[qxd.TopicPartition]int64{in: 2}); err != nil {
				t.Fatal(err)
			}
			p := newTxnProducer(t, c, "stable-"+name)
			if err := p.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			produceValues(ctx, t, p, "stable-out", "out")
			if err := p.SendOffsetsToTransaction(ctx, a, map[qxd.TopicPartition]qxd.OffsetAndMetadata{in: {Offset: 8}}); err != nil {
				t.Fatal(err)
			}
			if err := a.Close(ctx); err != nil {
				t.Fatal(err)
			}

			// The next owner must not start at 2 while the transaction is open.
			b := qxdtest.NewConsumer(t, qxdtest.Connect(t, n), qxd.Group("stable-g"), qxd.AutoCommit(0),
				qxd.Isolation(qxd.ReadCommitted))
			if err := b.Subscribe(ctx, in.Topic); err != nil {
				t.Fatal(err)
			}
			quiet(ctx, t, b, "while the transaction holding the partition's offset is open")
			// Committed waits likewise on a read-committed consumer.
			cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			got, err := b.Committed(cctx, in)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Committed while the transaction is open: %v, %v; want it to wait until its context ends", got, err)
			}

			if commit {
				err = p.CommitTransaction(ctx)
			} else {
				err = p.AbortTransaction(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"8", "9"}
			if !commit {
				want = []string{"2", "3", "4", "5", "6", "7", "8", "9"}
			}
			if vals := pollValues(ctx, t, b, len(want)); !slices.Equal(vals, want) {
				t.Fatalf("after the %s the member read %q, want %q", name, vals, want)
			}
			got, err = b.Committed(ctx, in)
			if err != nil || got[in].Offset != map[bool]int64{true: 8, false: 2}[commit] {
				t.Fatalf("Committed after the %s: %v, %v", name, got, err)
			}
		})
	}
}

// TestCommittedReportsItsContextsEnd: Committed on a read-committed consumer
// whose context ends while its request is out reports the context's end
// (errors.Is context.DeadlineExceeded), as it does when the context ends while it
// waits for a transaction, not a node that did not answer.
func TestCommittedReportsItsContextsEnd(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	in := qxd.TopicPartition{Topic: "stable-ctx", Partition: 0}
	qxdtest.CreateTopic(t, c, in.Topic, qxd.TopicConfig{Partitions: 1})
	m := qxdtest.NewConsumer(t, c, qxd.Group("stable-ctx-g"), qxd.AutoCommit(0), qxd.Isolation(qxd.ReadCommitted))
	if err := m.Subscribe(ctx, in.Topic); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{0, time.Microsecond, 50 * time.Microsecond} {
		cctx, cancel := context.WithTimeout(ctx, d)
		got, err := m.Committed(cctx, in)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Committed with a context of %v: %v, %v; want the context's end", d, got, err)
		}
	}
}
