package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// sendIdempotent produces a batch of n records from producer pi to partition 0
// of topic and returns the partition's error code and base offset.
func sendIdempotent(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, pi semantics.ProducerInfo, n int) (int16, int64) {
	t.Helper()
	var bb semantics.BatchBuilder
	for range n {
		bb.Append(&semantics.Record{Value: []byte("v")})
	}
	b, err := bb.Build(nil, pi, semantics.CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	r, err := produceReq(-1, map[string]map[int32][]byte{topic: {0: b}}).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Topics[0].Partitions[0]
	return p.ErrorCode, p.BaseOffset
}

// An idempotent producer's resend is answered with the offset stored the first
// time, a gap in its sequence and an older epoch are refused, as the partition
// writer does for the SDK's producers.
func TestIdempotentProduce(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "once", qxd.TopicConfig{})
	ctx := ctxFor(t, 30*time.Second)
	cl := kafkaClient(t, n, byName())

	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionTimeoutMillis = 60000
	resp, err := init.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 || resp.ProducerID < 0 || resp.ProducerEpoch != 0 {
		t.Fatalf("InitProducerId: %+v %v", resp, err)
	}
	pid, epoch := resp.ProducerID, resp.ProducerEpoch

	send := func(seq int32, epoch int16, n int) (int16, int64) {
		return sendIdempotent(ctx, t, cl, "once", semantics.ProducerInfo{ID: pid, Epoch: epoch, BaseSequence: seq}, n)
	}
	if code, off := send(0, epoch, 3); code != 0 || off != 0 {
		t.Fatalf("first batch: code %d offset %d", code, off)
	}
	if code, off := send(0, epoch, 3); code != 0 || off != 0 {
		t.Fatalf("resent batch: code %d offset %d, want the stored offset 0", code, off)
	}
	if code, _ := send(10, epoch, 1); code != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: code %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", code)
	}
	if code, off := send(3, epoch, 2); code != 0 || off != 3 {
		t.Fatalf("next batch: code %d offset %d, want 3", code, off)
	}

	// A producer that bumps its epoch keeps its id; its old epoch is fenced.
	bump := kmsg.NewPtrInitProducerIDRequest()
	bump.ProducerID, bump.ProducerEpoch = pid, epoch
	bresp, err := bump.RequestWith(ctx, cl)
	if err != nil || bresp.ErrorCode != 0 || bresp.ProducerID != pid || bresp.ProducerEpoch != epoch+1 {
		t.Fatalf("bump: %+v %v", bresp, err)
	}
	if code, off := send(0, epoch+1, 1); code != 0 || off != 5 {
		t.Fatalf("new epoch: code %d offset %d, want 5", code, off)
	}
	if code, _ := send(5, epoch, 1); code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("old epoch: code %d, want INVALID_PRODUCER_EPOCH", code)
	}

	// A transactional id goes to the transaction coordinator, which checks its
	// timeout.
	txn := kmsg.NewPtrInitProducerIDRequest()
	txn.TransactionalID = ptr("tx-1")
	if tresp, err := txn.RequestWith(ctx, cl); err != nil || tresp.ErrorCode != kerr.InvalidTransactionTimeout.Code {
		t.Fatalf("transactional InitProducerId without a timeout: %+v %v, want INVALID_TRANSACTION_TIMEOUT", tresp, err)
	}
	txn.TransactionTimeoutMillis = 60000
	if tresp, err := txn.RequestWith(ctx, cl); err != nil || tresp.ErrorCode != 0 || tresp.ProducerID < 0 {
		t.Fatalf("transactional InitProducerId: %+v %v, want a producer id", tresp, err)
	}
	if recs := pollSDK(t, c, "once", 1, 6); len(recs) != 6 {
		t.Fatalf("stored %d records, want 6", len(recs))
	}
}

// A producer's later batch that reaches the partition before its first (the
// first was answered NOT_LEADER_OR_FOLLOWER by a writer still starting, and is
// resent) is refused UNKNOWN_PRODUCER_ID, storing nothing: Kafka clients resend
// it behind the first. Stored, it made the first one's resend a duplicate,
// acknowledged and never stored.
func TestIdempotentProduceLaterBatchFirst(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "later", qxd.TopicConfig{})
	ctx := ctxFor(t, 30*time.Second)
	cl := kafkaClient(t, n, byName())

	init := kmsg.NewPtrInitProducerIDRequest()
	resp, err := init.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %+v %v", resp, err)
	}
	send := func(seq int32, n int) (int16, int64) {
		return sendIdempotent(ctx, t, cl, "later", semantics.ProducerInfo{ID: resp.ProducerID, Epoch: resp.ProducerEpoch, BaseSequence: seq}, n)
	}
	if code, off := send(3, 2); code != kerr.UnknownProducerID.Code {
		t.Fatalf("later batch first: code %d offset %d, want UNKNOWN_PRODUCER_ID", code, off)
	}
	if code, off := send(0, 3); code != 0 || off != 0 {
		t.Fatalf("first batch: code %d offset %d, want offset 0", code, off)
	}
	if code, off := send(3, 2); code != 0 || off != 3 {
		t.Fatalf("later batch resent: code %d offset %d, want offset 3", code, off)
	}
	if recs := pollSDK(t, c, "later", 1, 5); len(recs) != 5 {
		t.Fatalf("stored %d records, want 5", len(recs))
	}
}
