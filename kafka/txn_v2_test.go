package kafka_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestKafkaTransactionsV2: franz-go sees transaction.version 2 and runs its
// transactions on KIP-890 part 2 (Produce v12 and up adding the partitions —
// v13, by topic id, is what it sends —, EndTxn v5,
// no AddPartitionsToTxn); every end bumps the epoch; read_committed readers see
// exactly the committed records; the producer at the epoch before a bump is
// fenced at produce and at TxnOffsetCommit; a retried EndTxn is answered as
// done; an abort with no transaction is taken and bumps the epoch.
func TestKafkaTransactionsV2(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "tv2", qxd.TopicConfig{Partitions: 2})
	ctx := ctxFor(t, 60*time.Second)
	var log versionLog
	p := kafkaClient(t, n, kgo.TransactionalID("tv2-p"), kgo.DefaultProduceTopic("tv2"),
		kgo.TransactionTimeout(10*time.Second), kgo.WithLogger(&log))

	var pid int64
	var epoch int16
	for i, commit := range []bool{true, false, true} {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for j := range 4 {
			r := &kgo.Record{Key: []byte(strconv.Itoa(j)), Value: fmt.Appendf(nil, "t%d-%d", i, j)}
			if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		id, ep, err := p.ProducerID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction %d (commit %v): %v", i, commit, err)
		}
		pid, epoch, err = p.ProducerID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if pid != id || epoch != ep+1 {
			t.Fatalf("transaction %d ended at producer %d epoch %d, the next one has %d epoch %d: want the epoch bumped", i, id, ep, pid, epoch)
		}
	}
	for name, want := range map[string]int16{"Produce": 13, "EndTxn": 5, "AddPartitionsToTxn": -1} {
		if got := log.max(name); got != want {
			t.Errorf("%s was answered at v%d at most, want v%d (-1: never)", name, got, want)
		}
	}
	want := []string{"t0-0", "t0-1", "t0-2", "t0-3", "t2-0", "t2-1", "t2-2", "t2-3"}
	committed := func() {
		t.Helper()
		var got []string
		for _, r := range readCommitted(ctx, t, []string{n.KafkaAddr()}, "tv2", len(want)) {
			got = append(got, string(r.Value))
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("read committed %q, want %q", got, want)
		}
	}
	committed()

	old := epoch - 1 // the epoch of the transaction that committed last
	// A zombie at the old epoch: its produce, to a partition of the ended
	// transaction and to another, is refused and stores nothing.
	for _, part := range []int32{0, 1} {
		var bb semantics.BatchBuilder
		bb.Append(&semantics.Record{Value: []byte("zombie")})
		b, err := bb.Build(nil, semantics.ProducerInfo{ID: pid, Epoch: old, BaseSequence: 100, Transactional: true}, semantics.CompressionNone)
		if err != nil {
			t.Fatal(err)
		}
		req := produceReq(-1, map[string]map[int32][]byte{"tv2": {part: b}})
		req.Version, req.TransactionID = 12, kmsg.StringPtr("tv2-p")
		resp := roundTrip(t, n.KafkaAddr(), req).(*kmsg.ProduceResponse)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidProducerEpoch.Code {
			t.Errorf("zombie produce to tv2/%d at epoch %d: %v, want INVALID_PRODUCER_EPOCH", part, old, kerr.ErrorForCode(code))
		}
	}
	oc := kmsg.NewPtrTxnOffsetCommitRequest()
	oc.Version = 5
	oc.TransactionalID, oc.Group, oc.ProducerID, oc.ProducerEpoch = "tv2-p", "tv2-g", pid, old
	ot := kmsg.NewTxnOffsetCommitRequestTopic()
	ot.Topic = "tv2"
	op := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	op.Partition, op.Offset = 0, 1
	ot.Partitions = append(ot.Partitions, op)
	oc.Topics = append(oc.Topics, ot)
	ocr := roundTrip(t, n.KafkaAddr(), oc).(*kmsg.TxnOffsetCommitResponse)
	if code := ocr.Topics[0].Partitions[0].ErrorCode; code != kerr.ProducerFenced.Code {
		t.Errorf("zombie TxnOffsetCommit v5 at epoch %d: %v, want PRODUCER_FENCED", old, kerr.ErrorForCode(code))
	}

	// The last commit again, at its epoch: a retry, answered as done with the
	// producer's current id and epoch; as an abort it is INVALID_TXN_STATE.
	end := func(e int16, commit bool) *kmsg.EndTxnResponse {
		req := kmsg.NewPtrEndTxnRequest()
		req.Version = 5
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = "tv2-p", pid, e, commit
		return roundTrip(t, n.KafkaAddr(), req).(*kmsg.EndTxnResponse)
	}
	if r := end(old, true); r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != epoch {
		t.Errorf("retried EndTxn v5: %v, producer %d epoch %d; want done, producer %d epoch %d", kerr.ErrorForCode(r.ErrorCode), r.ProducerID, r.ProducerEpoch, pid, epoch)
	}
	if r := end(old, false); r.ErrorCode != kerr.InvalidTxnState.Code {
		t.Errorf("abort at the epoch of a commit: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(r.ErrorCode))
	}
	// No transaction is open: a commit is refused, an abort taken, bumping the epoch.
	if r := end(epoch, true); r.ErrorCode != kerr.InvalidTxnState.Code {
		t.Errorf("commit with no transaction: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := end(epoch, false); r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != epoch+1 {
		t.Errorf("abort with no transaction: %v, producer %d epoch %d; want producer %d epoch %d", kerr.ErrorForCode(r.ErrorCode), r.ProducerID, r.ProducerEpoch, pid, epoch+1)
	}
	// The client's epoch is now the old one: its next transaction is fenced.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("fenced")}).FirstErr()
	if !errors.Is(err, kerr.InvalidProducerEpoch) && !errors.Is(err, kerr.ProducerFenced) {
		t.Errorf("produce at the epoch before an abort's bump: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	committed()
}
