package server_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// initTxn gives transactional id its producer id and epoch, retrying while the
// transaction coordinator starts.
func initTxn(ctx context.Context, t *testing.T, tx *server.Transactions, id string, timeout time.Duration) (int64, int16) {
	t.Helper()
	for {
		pid, epoch, err := tx.InitProducerID(ctx, id, timeout, -1, -1)
		if err == nil {
			return pid, epoch
		}
		if !errors.Is(err, semantics.ErrNotCoordinator) || ctx.Err() != nil {
			t.Fatalf("init producer id of %q: %v", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// retryTxn runs step, a transaction coordinator's request, until it succeeds,
// retrying the errors Kafka's clients retry: a store that got no answer (on a
// cluster, the transactions bucket may be electing a leader: its leadership
// follows the groups bucket's), a coordinator moving, an end still completing.
func retryTxn(ctx context.Context, t *testing.T, what string, step func() error) {
	t.Helper()
	for {
		err := step()
		if err == nil {
			return
		}
		if !errors.Is(err, semantics.ErrCoordinatorNotAvailable) && !errors.Is(err, semantics.ErrNotCoordinator) &&
			!errors.Is(err, semantics.ErrConcurrentTransactions) || ctx.Err() != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: %v", what, err)
		time.Sleep(50 * time.Millisecond)
	}
}

// txnBatch is a transactional batch of values.
func txnBatch(t *testing.T, pid int64, epoch int16, seq int32, values ...string) []byte {
	t.Helper()
	return buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: epoch, BaseSequence: seq, Transactional: true}, values...)
}

// fetchAll reads partition p from offset with isolation, and returns the
// application's records (values), the result and the offsets of control batches.
func fetchAll(ctx context.Context, t *testing.T, f *server.Fetcher, topic string, p int32, from int64, committed bool) ([]string, server.FetchResult, []int64) {
	t.Helper()
	r, err := f.Fetch(ctx, server.FetchRequest{Topic: topic, Partition: p, Offset: from, ReadCommitted: committed})
	if err != nil {
		t.Fatalf("fetch %s/%d from %d (read committed %v): %v", topic, p, from, committed, err)
	}
	var values []string
	var markers []int64
	for _, b := range r.Batches {
		h, err := semantics.ParseBatchHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if h.Control() {
			markers = append(markers, h.BaseOffset)
		}
		recs, err := semantics.DecodeRecords(nil, b, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			if rec.Offset < from || committed && abortedAt(r.Aborted, h.ProducerID, rec.Offset) {
				continue
			}
			values = append(values, string(rec.Value))
		}
	}
	return values, r, markers
}

func abortedAt(aborted []semantics.AbortedTxn, pid, offset int64) bool {
	for _, a := range aborted {
		if a.ProducerID == pid && offset >= a.FirstOffset && offset < a.LastOffset {
			return true
		}
	}
	return false
}

// TestTxnCommitAbortReadCommitted runs a transaction that commits and one that
// aborts through the coordinator and the partition writer: read-committed sees
// nothing of a transaction until its commit marker, nothing of an aborted one,
// read-uncommitted sees everything, control batches take an offset and hold no
// record, and offsets stay dense.
func TestTxnCommitAbortReadCommitted(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "txn-rc", qxd.TopicConfig{Partitions: 2})
	ctx := qxdtest.Context(t, 30*time.Second)
	tx, w, f := n.Transactions(), n.Writers(), n.Fetcher()
	tp := semantics.TopicPartition{Topic: "txn-rc", Partition: 1}

	pid, epoch := initTxn(ctx, t, tx, "rc", 10*time.Second)
	if err := tx.AddPartitions(ctx, "rc", pid, epoch, []semantics.TopicPartition{tp}); err != nil {
		t.Fatal(err)
	}
	r := appendWhenLed(ctx, t, w, tp.Topic, 1, txnBatch(t, pid, epoch, 0, "a", "b", "c"))
	if r.BaseOffset != 0 {
		t.Fatalf("base offset %d, want 0", r.BaseOffset)
	}
	got, res, _ := fetchAll(ctx, t, f, tp.Topic, 1, 0, true)
	if len(got) != 0 || res.LastStableOffset != 0 || res.HighWatermark != 3 {
		t.Fatalf("read committed during the transaction: %q, LSO %d, HW %d; want nothing, LSO 0, HW 3", got, res.LastStableOffset, res.HighWatermark)
	}
	if got, _, _ := fetchAll(ctx, t, f, tp.Topic, 1, 0, false); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("read uncommitted during the transaction: %q", got)
	}
	if err := tx.EndTxn(ctx, "rc", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	got, res, markers := fetchAll(ctx, t, f, tp.Topic, 1, 0, true)
	if !slices.Equal(got, []string{"a", "b", "c"}) || res.LastStableOffset != 4 || res.HighWatermark != 4 || !slices.Equal(markers, []int64{3}) {
		t.Fatalf("read committed after commit: %q, LSO %d, HW %d, markers at %v; want a b c, LSO 4, HW 4, a marker at 3",
			got, res.LastStableOffset, res.HighWatermark, markers)
	}

	// The next transaction aborts.
	if err := tx.AddPartitions(ctx, "rc", pid, epoch, []semantics.TopicPartition{tp}); err != nil {
		t.Fatal(err)
	}
	if r := appendWhenLed(ctx, t, w, tp.Topic, 1, txnBatch(t, pid, epoch, 3, "x", "y")); r.BaseOffset != 4 {
		t.Fatalf("base offset %d, want 4", r.BaseOffset)
	}
	if err := tx.EndTxn(ctx, "rc", pid, epoch, false); err != nil {
		t.Fatal(err)
	}
	if r := appendWhenLed(ctx, t, w, tp.Topic, 1, buildBatch(t, semantics.NoProducer, "plain")); r.BaseOffset != 7 {
		t.Fatalf("base offset after the abort marker %d, want 7", r.BaseOffset)
	}
	got, res, markers = fetchAll(ctx, t, f, tp.Topic, 1, 0, true)
	want := []semantics.AbortedTxn{{ProducerID: pid, FirstOffset: 4, LastOffset: 6}}
	if !slices.Equal(got, []string{"a", "b", "c", "plain"}) || !slices.Equal(res.Aborted, want) || res.LastStableOffset != 8 || !slices.Equal(markers, []int64{3, 6}) {
		t.Fatalf("read committed after abort: %q, aborted %v, LSO %d, markers %v; want a b c plain, %v, LSO 8, markers 3 6",
			got, res.Aborted, res.LastStableOffset, markers, want)
	}
	if got, _, _ := fetchAll(ctx, t, f, tp.Topic, 1, 0, false); !slices.Equal(got, []string{"a", "b", "c", "x", "y", "plain"}) {
		t.Fatalf("read uncommitted: %q", got)
	}
	d, err := tx.Describe("rc")
	if err != nil || d.State != semantics.TxnCompleteAbort || d.ProducerID != pid {
		t.Fatalf("describe: %+v, %v", d, err)
	}

	// The partition's other readers: the SDK hands out no marker, and reads on.
	cons := qxdtest.NewConsumer(t, c)
	if err := cons.Assign(ctx, qxd.Assignment{Topic: tp.Topic, Partition: 1, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	for len(offsets) < 6 && ctx.Err() == nil {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			offsets = append(offsets, rec.Offset)
		}
	}
	if !slices.Equal(offsets, []int64{0, 1, 2, 4, 5, 7}) {
		t.Fatalf("SDK consumer read offsets %v, want 0 1 2 4 5 7 (no markers)", offsets)
	}
}

// TestTxnZombieFenced: a second InitProducerId with the same transactional id
// aborts the first producer's transaction and fences it everywhere: its produce,
// AddPartitions, TxnOffsetCommit and EndTxn are refused.
func TestTxnZombieFenced(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "txn-zombie", qxd.TopicConfig{Partitions: 1})
	ctx := qxdtest.Context(t, 30*time.Second)
	tx, w, f := n.Transactions(), n.Writers(), n.Fetcher()
	tp := semantics.TopicPartition{Topic: "txn-zombie", Partition: 0}

	pid, old := initTxn(ctx, t, tx, "z", 10*time.Second)
	if err := tx.AddPartitions(ctx, "z", pid, old, []semantics.TopicPartition{tp}); err != nil {
		t.Fatal(err)
	}
	if err := tx.AddGroup(ctx, "z", pid, old, "zg"); err != nil {
		t.Fatal(err)
	}
	appendWhenLed(ctx, t, w, tp.Topic, 0, txnBatch(t, pid, old, 0, "zombie-1"))

	pid2, epoch := initTxn(ctx, t, tx, "z", 10*time.Second)
	if pid2 != pid || epoch <= old {
		t.Fatalf("second init: producer %d epoch %d, want producer %d with an epoch above %d", pid2, epoch, pid, old)
	}
	_, err := w.Append(ctx, tp.Topic, 0, txnBatch(t, pid, old, 1, "zombie-2"))
	if !errors.Is(err, semantics.ErrInvalidProducerEpoch) {
		t.Fatalf("zombie produce: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if err := tx.AddPartitions(ctx, "z", pid, old, []semantics.TopicPartition{tp}); !errors.Is(err, semantics.ErrProducerFenced) {
		t.Fatalf("zombie AddPartitions: %v, want PRODUCER_FENCED", err)
	}
	if err := tx.CommitOffsets(ctx, "z", pid, old, "zg", -1, "", []server.TxnOffset{{Topic: tp.Topic, Offset: 1}}); !errors.Is(err, semantics.ErrProducerFenced) {
		t.Fatalf("zombie TxnOffsetCommit: %v, want PRODUCER_FENCED", err)
	}
	if err := tx.EndTxn(ctx, "z", pid, old, true); !errors.Is(err, semantics.ErrProducerFenced) {
		t.Fatalf("zombie EndTxn: %v, want PRODUCER_FENCED", err)
	}

	// The new producer's own transaction works, from sequence 0.
	if err := tx.AddPartitions(ctx, "z", pid, epoch, []semantics.TopicPartition{tp}); err != nil {
		t.Fatal(err)
	}
	appendWhenLed(ctx, t, w, tp.Topic, 0, txnBatch(t, pid, epoch, 0, "new"))
	if err := tx.EndTxn(ctx, "z", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	got, res, _ := fetchAll(ctx, t, f, tp.Topic, 0, 0, true)
	if !slices.Equal(got, []string{"new"}) || len(res.Aborted) != 1 || res.Aborted[0].FirstOffset != 0 {
		t.Fatalf("read committed: %q, aborted %v (%+v); want only the new producer's record, the zombie's aborted", got, res.Aborted, res)
	}
}

// TestTxnOffsetsVisibleOnCommit: offsets committed in a transaction reach the
// group only when it commits, and never when it aborts.
func TestTxnOffsetsVisibleOnCommit(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "txn-offs", qxd.TopicConfig{Partitions: 1})
	ctx := qxdtest.Context(t, 30*time.Second)
	tx, g := n.Transactions(), n.Groups()
	waitCoordinating(ctx, t, g)

	committed := func() []int64 {
		t.Helper()
		return fetchedOffsets(ctx, t, g, groups.FetchRequest{Group: "txn-g"})
	}
	pid, epoch := initTxn(ctx, t, tx, "offs", 10*time.Second)
	for _, commit := range []bool{false, true} {
		if err := tx.AddGroup(ctx, "offs", pid, epoch, "txn-g"); err != nil {
			t.Fatal(err)
		}
		off := map[bool]int64{false: 5, true: 9}[commit]
		if err := tx.CommitOffsets(ctx, "offs", pid, epoch, "txn-g", -1, "", []server.TxnOffset{{Topic: "txn-offs", Offset: off}}); err != nil {
			t.Fatal(err)
		}
		if got := committed(); len(got) != 0 {
			t.Fatalf("offsets %v visible before the transaction ends", got)
		}
		if err := tx.EndTxn(ctx, "offs", pid, epoch, commit); err != nil {
			t.Fatal(err)
		}
		got := committed()
		switch {
		case !commit && len(got) != 0:
			t.Fatalf("offsets %v stored by an aborted transaction", got)
		case commit && !slices.Equal(got, []int64{9}):
			t.Fatalf("offsets after commit %v, want 9", got)
		}
	}
	if err := tx.EndTxn(ctx, "offs", pid, epoch, true); err != nil {
		t.Fatalf("EndTxn retried after its commit: %v, want success", err)
	}
	if err := tx.EndTxn(ctx, "offs", pid, epoch, false); !errors.Is(err, semantics.ErrInvalidTxnState) {
		t.Fatalf("abort after commit: %v, want INVALID_TXN_STATE", err)
	}
}

// TestTxnTimeoutAborts: a transaction left open past its timeout is aborted by the
// coordinator, which fences its producer.
func TestTxnTimeoutAborts(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "txn-timeout", qxd.TopicConfig{Partitions: 1})
	ctx := qxdtest.Context(t, 30*time.Second)
	tx, w, f := n.Transactions(), n.Writers(), n.Fetcher()
	tp := semantics.TopicPartition{Topic: "txn-timeout"}

	pid, epoch := initTxn(ctx, t, tx, "slow", 500*time.Millisecond)
	if err := tx.AddPartitions(ctx, "slow", pid, epoch, []semantics.TopicPartition{tp}); err != nil {
		t.Fatal(err)
	}
	appendWhenLed(ctx, t, w, tp.Topic, 0, txnBatch(t, pid, epoch, 0, "late"))
	for {
		d, err := tx.Describe("slow")
		if err != nil {
			t.Fatal(err)
		}
		if d.State == semantics.TxnCompleteAbort {
			if d.Epoch <= epoch {
				t.Fatalf("aborted with epoch %d, want above %d (the producer fenced)", d.Epoch, epoch)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("transaction still %s", d.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, res, _ := fetchAll(ctx, t, f, tp.Topic, 0, 0, true)
	if len(got) != 0 || res.LastStableOffset != 2 || len(res.Aborted) != 1 {
		t.Fatalf("read committed after the timeout: %q, LSO %d, aborted %v; want nothing, LSO 2, one aborted", got, res.LastStableOffset, res.Aborted)
	}
	if _, err := w.Append(ctx, tp.Topic, 0, txnBatch(t, pid, epoch, 1, "later")); !errors.Is(err, semantics.ErrInvalidProducerEpoch) {
		t.Fatalf("produce after the timeout: %v, want INVALID_PRODUCER_EPOCH", err)
	}
	if err := tx.EndTxn(ctx, "slow", pid, epoch, true); !errors.Is(err, semantics.ErrProducerFenced) {
		t.Fatalf("commit after the timeout: %v, want PRODUCER_FENCED", err)
	}
}

// TestTxnStateSurvivesRestart: a writer loading its partition again rebuilds the
// open transactions (the LSO) and the aborted-transactions index from the stream,
// and the coordinator its transactions from the bucket.
func TestTxnStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "txn-restart", qxd.TopicConfig{Partitions: 1})
	c.Close()
	ctx := qxdtest.Context(t, 30*time.Second)
	tx, w := n.Transactions(), n.Writers()
	tp := semantics.TopicPartition{Topic: "txn-restart"}

	pa, ea := initTxn(ctx, t, tx, "aborts", 10*time.Second)
	pb, eb := initTxn(ctx, t, tx, "stays", time.Minute)
	for _, p := range []struct {
		id    string
		pid   int64
		epoch int16
	}{{"aborts", pa, ea}, {"stays", pb, eb}} {
		if err := tx.AddPartitions(ctx, p.id, p.pid, p.epoch, []semantics.TopicPartition{tp}); err != nil {
			t.Fatal(err)
		}
	}
	appendWhenLed(ctx, t, w, tp.Topic, 0, txnBatch(t, pa, ea, 0, "a1")) // 0
	appendWhenLed(ctx, t, w, tp.Topic, 0, txnBatch(t, pb, eb, 0, "b1")) // 1
	if err := tx.EndTxn(ctx, "aborts", pa, ea, false); err != nil {     // marker at 2
		t.Fatal(err)
	}
	_, before, _ := fetchAll(ctx, t, n.Fetcher(), tp.Topic, 0, 0, true)
	want := []semantics.AbortedTxn{{ProducerID: pa, FirstOffset: 0, LastOffset: 2}}
	if before.LastStableOffset != 1 || !slices.Equal(before.Aborted, want) {
		t.Fatalf("before restart: LSO %d, aborted %v; want LSO 1 (the open transaction), %v", before.LastStableOffset, before.Aborted, want)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}

	n = qxdtest.StartNodeWith(t, cfg)
	tx = n.Transactions()
	waitFetch := func() server.FetchResult {
		for {
			r, err := n.Fetcher().Fetch(ctx, server.FetchRequest{Topic: tp.Topic, Offset: 0, ReadCommitted: true})
			if err == nil {
				return r
			}
			if !errors.Is(err, semantics.ErrNotLeader) || ctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if r := waitFetch(); r.LastStableOffset != 1 {
		t.Fatalf("after restart: LSO %d, want 1", r.LastStableOffset)
	}
	for {
		if err := tx.EndTxn(ctx, "stays", pb, eb, true); err == nil {
			break
		} else if !errors.Is(err, semantics.ErrNotCoordinator) || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := waitFetch()
	if r.LastStableOffset != 4 || !slices.Equal(r.Aborted, want) {
		t.Fatalf("after commit: LSO %d, aborted %v; want LSO 4, %v", r.LastStableOffset, r.Aborted, want)
	}
}

// fetchedOffsets is the committed offset of each partition req fetches, in the
// order the coordinator answers.
func fetchedOffsets(ctx context.Context, t *testing.T, g server.GroupCoordinator, req groups.FetchRequest) []int64 {
	t.Helper()
	got, err := g.FetchOffsets(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, e := range got {
		out = append(out, e.Offset)
	}
	return out
}
