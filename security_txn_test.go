package qxd_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestTxnWithPermissions: on a node with auth, an identity that may produce to a
// topic runs transactions, and one that may consume it reads read-committed; an
// identity without a produce right cannot register a transactional id.
func TestTxnWithPermissions(t *testing.T) {
	t.Parallel()
	node := qxdtest.StartNodeWith(t, securedConfig(t))
	url := node.ClientURL()
	super := connectAs(t, url, "super")
	qxdtest.CreateTopic(t, super, "orders", qxd.TopicConfig{Partitions: 1})
	ctx := qxdtest.Context(t, time.Minute)

	prod := connectAs(t, url, "producer")
	p, err := prod.NewProducer(qxd.TransactionalID("perm-1"), qxd.Linger(time.Millisecond))
	if err != nil {
		t.Fatalf("transactional producer of a user who may produce: %v", err)
	}
	defer p.Close(context.Background())
	for _, commit := range []bool{false, true} {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		v := map[bool]string{false: "aborted", true: "committed"}[commit]
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "orders", Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
		end := p.AbortTransaction
		if commit {
			end = p.CommitTransaction
		}
		if err := end(ctx); err != nil {
			t.Fatal(err)
		}
	}

	cons := qxdtest.NewConsumer(t, connectAs(t, url, "consumer"), qxd.Isolation(qxd.ReadCommitted))
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "orders", Partition: 0, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	if got := pollValues(ctx, t, cons, 1); !slices.Equal(got, []string{"committed"}) {
		t.Fatalf("read committed as consumer: %q, want committed", got)
	}

	nobody := connectAs(t, url, "nobody", qxd.ClientRequestTimeout(2*time.Second))
	if _, err := nobody.NewProducer(qxd.TransactionalID("perm-2")); err == nil {
		t.Fatal("a user without a produce right registered a transactional id")
	} else if errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
