package server_test

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestTxnEndBumping: an end of transactions v2 (Kafka's EndTxn v5) bumps the
// epoch and its markers carry the new one, so the producer at the ended epoch is
// fenced at the partition and at the coordinator; a retry at the ended epoch is
// answered as done; the end that uses the epoch's last value hands the producer
// a new producer id at epoch 0, and that producer's transactions commit.
func TestTxnEndBumping(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "txn-bump", qxd.TopicConfig{Partitions: 1})
	ctx := qxdtest.Context(t, 30*time.Second)
	tx, w, f := n.Transactions(), n.Writers(), n.Fetcher()
	tp := semantics.TopicPartition{Topic: "txn-bump", Partition: 0}
	parts := []semantics.TopicPartition{tp}

	pid, epoch := initTxn(ctx, t, tx, "bump", 10*time.Second)
	if err := tx.AddPartitions(ctx, "bump", pid, epoch, parts); err != nil {
		t.Fatal(err)
	}
	appendWhenLed(ctx, t, w, tp.Topic, 0, txnBatch(t, pid, epoch, 0, "one"))
	np, ne, err := tx.EndTxnBumping(ctx, "bump", pid, epoch, true)
	if err != nil || np != pid || ne != epoch+1 {
		t.Fatalf("end: producer %d epoch %d (%v), want producer %d epoch %d", np, ne, err, pid, epoch+1)
	}
	// The ended epoch: a retry is done, anything else fenced.
	if rp, re, err := tx.EndTxnBumping(ctx, "bump", pid, epoch, true); err != nil || rp != np || re != ne {
		t.Fatalf("retried end: producer %d epoch %d (%v), want producer %d epoch %d", rp, re, err, np, ne)
	}
	if _, err := w.Append(ctx, tp.Topic, 0, txnBatch(t, pid, epoch, 1, "zombie")); !errors.Is(err, semantics.ErrInvalidProducerEpoch) {
		t.Fatalf("produce at the ended epoch: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if err := tx.AddPartitions(ctx, "bump", pid, epoch, parts); !errors.Is(err, semantics.ErrProducerFenced) {
		t.Fatalf("AddPartitions at the ended epoch: %v, want PRODUCER_FENCED", err)
	}
	// The next transaction at the new epoch, from sequence 0; an abort with no
	// transaction is taken.
	if err := tx.AddPartitions(ctx, "bump", np, ne, parts); err != nil {
		t.Fatal(err)
	}
	appendWhenLed(ctx, t, w, tp.Topic, 0, txnBatch(t, np, ne, 0, "two"))
	if _, ne, err = tx.EndTxnBumping(ctx, "bump", np, ne, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tx.EndTxnBumping(ctx, "bump", np, ne, true); !errors.Is(err, semantics.ErrInvalidTxnState) {
		t.Fatalf("commit with no transaction: %v, want INVALID_TXN_STATE", err)
	}
	if _, ne, err = tx.EndTxnBumping(ctx, "bump", np, ne, false); err != nil {
		t.Fatalf("abort with no transaction: %v", err)
	}

	// The epoch's last value: the end hands out a new producer id.
	last := int16(math.MaxInt16 - 1)
	if err := tx.SetTxnEpoch(ctx, "bump", last); err != nil {
		t.Fatal(err)
	}
	if err := tx.AddPartitions(ctx, "bump", pid, last, parts); err != nil {
		t.Fatal(err)
	}
	appendWhenLed(ctx, t, w, tp.Topic, 0, txnBatch(t, pid, last, 0, "three"))
	np, ne, err = tx.EndTxnBumping(ctx, "bump", pid, last, true)
	if err != nil || np == pid || ne != 0 {
		t.Fatalf("end at epoch %d: producer %d epoch %d (%v), want a new producer id at epoch 0", last, np, ne, err)
	}
	if rp, re, err := tx.EndTxnBumping(ctx, "bump", pid, last, true); err != nil || rp != np || re != 0 {
		t.Fatalf("retried end at epoch %d: producer %d epoch %d (%v), want producer %d epoch 0", last, rp, re, err, np)
	}
	if _, err := w.Append(ctx, tp.Topic, 0, txnBatch(t, pid, last, 1, "zombie")); !errors.Is(err, semantics.ErrInvalidProducerEpoch) {
		t.Fatalf("produce of the old producer id: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if err := tx.AddPartitions(ctx, "bump", np, 0, parts); err != nil {
		t.Fatal(err)
	}
	appendWhenLed(ctx, t, w, tp.Topic, 0, txnBatch(t, np, 0, 0, "four"))
	if _, _, err := tx.EndTxnBumping(ctx, "bump", np, 0, true); err != nil {
		t.Fatal(err)
	}
	got, _, _ := fetchAll(ctx, t, f, tp.Topic, 0, 0, true)
	if want := []string{"one", "two", "three", "four"}; !slices.Equal(got, want) {
		t.Fatalf("read committed %q, want %q", got, want)
	}
	d, err := tx.Describe("bump")
	if err != nil || d.ProducerID != np || d.Epoch != 1 {
		t.Fatalf("describe: %+v (%v), want producer %d epoch 1", d, err, np)
	}
}
