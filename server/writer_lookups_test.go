package server_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestWriterLoadLookupsMatchRequests reads what a writer's load reads of its log
// besides the replay — the stream's state, the last message on the checkpoint
// subject, the abort markers — from the leader's store in process and with the
// JetStream API requests (stream info, the leader's last-by-subject get, its
// next-by-subject gets), on streams that are plain, compacted (holes, a
// tombstone), trimmed (a log start in the stream's metadata), purged (nothing
// stored after a last sequence), empty, and with transaction markers: both must
// give the same facts, field by field, and the store reads must be counted as
// such.
func TestWriterLoadLookupsMatchRequests(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	ws, tx := n.Writers(), n.Transactions()
	pi := func(seq int) semantics.ProducerInfo { return semantics.ProducerInfo{ID: 7, BaseSequence: int32(seq)} }
	plain := func(t *testing.T, topic string, keys ...string) {
		for i, k := range keys {
			if _, err := appendRetrying(ctx, ws, topic, 0, keyedBatch(t, pi(i), k, []byte("v"), 0)); err != nil {
				t.Fatalf("%s: append %d: %v", topic, i, err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		cfg   qxd.TopicConfig
		fill  func(t *testing.T, topic string)
		check func(f server.WriterLoadFacts) bool // the case holds what it is named for
	}{
		{"empty", qxd.TopicConfig{}, func(*testing.T, string) {}, func(f server.WriterLoadFacts) bool {
			return f.State.LastSeq == 0 && errors.Is(f.CkErr, semantics.ErrNoBatch)
		}},
		{"plain", qxd.TopicConfig{}, func(t *testing.T, topic string) { plain(t, topic, "a", "b", "c", "d") }, func(f server.WriterLoadFacts) bool {
			return f.State.Msgs == 4 && f.CkErr == nil && f.Checkpoint.Header.Get(semantics.CheckpointHeader) != ""
		}},
		{"compacted", qxd.TopicConfig{Compact: true}, func(t *testing.T, topic string) {
			for i, k := range []string{"a", "b", "a", "-b", "c"} {
				v := []byte("v")
				if k[0] == '-' {
					k, v = k[1:], nil
				}
				if _, err := appendRetrying(ctx, ws, topic, 0, keyedBatch(t, pi(i), k, v, 0)); err != nil {
					t.Fatalf("%s: append %d: %v", topic, i, err)
				}
			}
		}, func(f server.WriterLoadFacts) bool { return f.State.LastSeq == 5 && f.State.Msgs < 5 }},
		{"trimmed", qxd.TopicConfig{}, func(t *testing.T, topic string) {
			plain(t, topic, "a", "b", "c", "d")
			if _, err := n.Admin().DeleteRecords(ctx, semantics.DeleteRecordsRequest{Name: topic, Partition: 0, Offset: 2}); err != nil {
				t.Fatalf("%s: trim: %v", topic, err)
			}
		}, func(f server.WriterLoadFacts) bool { return f.State.LogStart == 2 && f.State.FirstSeq > 1 }},
		{"purged", qxd.TopicConfig{}, func(t *testing.T, topic string) {
			plain(t, topic, "a", "b", "c")
			s, err := js.Stream(ctx, semantics.StreamName(topic, 0))
			if err == nil {
				err = s.Purge(ctx)
			}
			if err != nil {
				t.Fatalf("%s: purge: %v", topic, err)
			}
		}, func(f server.WriterLoadFacts) bool {
			return f.State.Msgs == 0 && f.State.LastSeq == 3 && errors.Is(f.CkErr, semantics.ErrNoBatch)
		}},
		{"txn", qxd.TopicConfig{}, func(t *testing.T, topic string) {
			tp := []semantics.TopicPartition{{Topic: topic, Partition: 0}}
			pid, epoch := initTxn(ctx, t, tx, "lookups", 10*time.Second)
			for i, commit := range []bool{false, true, false} {
				if err := tx.AddPartitions(ctx, "lookups", pid, epoch, tp); err != nil {
					t.Fatal(err)
				}
				appendWhenLed(ctx, t, ws, topic, 0, txnBatch(t, pid, epoch, int32(2*i), "x", "y"))
				if err := tx.EndTxn(ctx, "lookups", pid, epoch, commit); err != nil {
					t.Fatal(err)
				}
			}
			appendWhenLed(ctx, t, ws, topic, 0, buildBatch(t, semantics.NoProducer, "after"))
		}, func(f server.WriterLoadFacts) bool {
			return len(f.Aborted) == 2 && f.Aborted[0].Header.Get(semantics.TxnFirstHeader) != ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "lookups-" + tc.name
			qxdtest.CreateTopic(t, c, topic, tc.cfg)
			tc.fill(t, topic)
			before := n.WriterLoadLookups()
			local, err := n.WriterLoadFacts(ctx, topic, 0, true)
			if err != nil {
				t.Fatalf("from the store: %v", err)
			}
			after := n.WriterLoadLookups()
			remote, err := n.WriterLoadFacts(ctx, topic, 0, false)
			if err != nil {
				t.Fatalf("with requests: %v", err)
			}
			if got := after.Store - before.Store; got != 3 || after.NATS != before.NATS {
				t.Fatalf("3 lookups from the store counted %d from the store and %d as requests: the store was not read",
					got, after.NATS-before.NATS)
			}
			ls, rs := local.State, remote.State
			if ls.FirstSeq != rs.FirstSeq || ls.LastSeq != rs.LastSeq || ls.Msgs != rs.Msgs || ls.Bytes != rs.Bytes ||
				ls.LogStart != rs.LogStart || !slices.Equal(ls.Lost, rs.Lost) {
				t.Fatalf("state from the store %+v, from the stream info %+v", ls, rs)
			}
			if !errors.Is(local.CkErr, semantics.ErrNoBatch) && local.CkErr != nil || !errors.Is(remote.CkErr, semantics.ErrNoBatch) && remote.CkErr != nil ||
				(local.CkErr == nil) != (remote.CkErr == nil) {
				t.Fatalf("checkpoint from the store: %v, with a request: %v", local.CkErr, remote.CkErr)
			}
			if !sameMsg(local.Checkpoint, remote.Checkpoint) {
				t.Fatalf("checkpoint from the store %+v, with a request %+v", local.Checkpoint, remote.Checkpoint)
			}
			if len(local.Aborted) != len(remote.Aborted) {
				t.Fatalf("%d abort markers from the store, %d with requests", len(local.Aborted), len(remote.Aborted))
			}
			for i := range local.Aborted {
				if !sameMsg(local.Aborted[i], remote.Aborted[i]) {
					t.Fatalf("abort marker %d from the store %+v, with requests %+v", i, local.Aborted[i], remote.Aborted[i])
				}
			}
			if !tc.check(local) {
				t.Fatalf("the stream does not hold what the case is for: %+v", local)
			}
		})
	}
}

// sameMsg reports whether a and b are the same stored message: sequence,
// subject, headers, bytes and stored time.
func sameMsg(a, b partition.Msg) bool {
	return a.Seq == b.Seq && a.Subject == b.Subject && reflect.DeepEqual(a.Header, b.Header) &&
		slices.Equal(a.Data, b.Data) && a.Time.Equal(b.Time)
}
