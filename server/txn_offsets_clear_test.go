package server_test

import (
	"errors"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestTxnOffsetsClear: a transaction's offset of -2 (earliest), as Kafka's
// TxnOffsetCommit may carry, clears the group's position when the transaction
// commits, as an OffsetCommit of it does: the group service answers the partition
// as never committed, and with Logical (the Kafka door) hands -2 back. Another
// negative offset is refused when it is sent, not when the transaction ends.
func TestTxnOffsetsClear(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "txn-clear", qxd.TopicConfig{Partitions: 1})
	ctx := qxdtest.Context(t, 30*time.Second)
	tx, g := n.Transactions(), n.Groups()
	waitCoordinating(ctx, t, g)
	committed := func(logical bool) []int64 {
		t.Helper()
		return fetchedOffsets(ctx, t, g, groups.FetchRequest{Group: "txn-clear-g", Logical: logical})
	}
	pid, epoch := initTxn(ctx, t, tx, "clear", 10*time.Second)
	for _, off := range []int64{7, -2} {
		if err := tx.AddGroup(ctx, "clear", pid, epoch, "txn-clear-g"); err != nil {
			t.Fatal(err)
		}
		if off < 0 {
			err := tx.CommitOffsets(ctx, "clear", pid, epoch, "txn-clear-g", -1, "", []server.TxnOffset{{Topic: "txn-clear", Offset: -3}})
			if !errors.Is(err, semantics.ErrInvalidRequest) {
				t.Fatalf("offset -3 in a transaction: %v, want INVALID_REQUEST", err)
			}
		}
		if err := tx.CommitOffsets(ctx, "clear", pid, epoch, "txn-clear-g", -1, "", []server.TxnOffset{{Topic: "txn-clear", Offset: off}}); err != nil {
			t.Fatalf("offset %d in a transaction: %v", off, err)
		}
		if err := tx.EndTxn(ctx, "clear", pid, epoch, true); err != nil {
			t.Fatal(err)
		}
	}
	if got := committed(false); len(got) != 0 {
		t.Errorf("committed offsets after the transaction cleared them: %v, want none", got)
	}
	if got := committed(true); len(got) != 1 || got[0] != -2 {
		t.Errorf("committed offsets for the Kafka door: %v, want -2", got)
	}
}
