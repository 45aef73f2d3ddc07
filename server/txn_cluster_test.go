package server_test

import (
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

// TestTxnCoordinatorFailover stops the node coordinating transactions while one
// transaction is decided (commit stored, no marker written yet) and another is
// open: the next coordinator, on another node, finishes the commit (markers and
// group offsets) and aborts the open one when its timeout passes.
func TestTxnCoordinatorFailover(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 60*time.Second)
	c := qxdtest.ConnectCluster(t, nodes)
	const topic = "txn-fo"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 2, Replicas: 3})
	parts := []semantics.TopicPartition{{Topic: topic, Partition: 0}, {Topic: topic, Partition: 1}}

	coordinating := func(among []*server.Node) *server.Node {
		t.Helper()
		for {
			for _, n := range among {
				if n.Transactions().Coordinating() {
					return n
				}
			}
			if ctx.Err() != nil {
				t.Fatal("no node coordinates transactions")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// onLeader runs f on the node leading partition p, retrying while leadership
	// moves.
	onLeader := func(among []*server.Node, p int32, f func(n *server.Node) error) {
		t.Helper()
		for {
			for _, n := range among {
				err := f(n)
				if err == nil {
					return
				}
				if !errors.Is(err, semantics.ErrNotLeader) {
					t.Fatalf("partition %d on %s: %v", p, n.Name(), err)
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("partition %d: no node leads it", p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	coord := coordinating(nodes)
	// Kafka clients send TxnOffsetCommit to the group coordinator: it must be the
	// node coordinating transactions.
	for {
		if _, err := coord.Groups().ListGroups(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("%s coordinates transactions but not groups: %v", coord.Name(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tx := coord.Transactions()
	pid, epoch := initTxn(ctx, t, tx, "fo", time.Minute)
	opid, oepoch := initTxn(ctx, t, tx, "fo-open", 3*time.Second)
	for _, id := range []struct {
		id    string
		pid   int64
		epoch int16
	}{{"fo", pid, epoch}, {"fo-open", opid, oepoch}} {
		if err := tx.AddPartitions(ctx, id.id, id.pid, id.epoch, parts); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.AddGroup(ctx, "fo", pid, epoch, "fo-g"); err != nil {
		t.Fatal(err)
	}
	if err := tx.CommitOffsets(ctx, "fo", pid, epoch, "fo-g", -1, "", []server.TxnOffset{{Topic: topic, Partition: 0, Offset: 42}}); err != nil {
		t.Fatal(err)
	}
	for _, tp := range parts {
		onLeader(nodes, tp.Partition, func(n *server.Node) error {
			_, err := n.Writers().Append(ctx, topic, tp.Partition, txnBatch(t, pid, epoch, 0, "commit-me"))
			return err
		})
		onLeader(nodes, tp.Partition, func(n *server.Node) error {
			_, err := n.Writers().Append(ctx, topic, tp.Partition, txnBatch(t, opid, oepoch, 0, "abort-me"))
			return err
		})
	}
	if err := tx.DecideEndAndHalt(ctx, "fo", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	for _, tp := range parts {
		onLeader(nodes, tp.Partition, func(n *server.Node) error {
			r, err := n.Fetcher().Fetch(ctx, server.FetchRequest{Topic: topic, Partition: tp.Partition, ReadCommitted: true})
			if err == nil && (r.LastStableOffset != 0 || len(r.Batches) != 0) {
				t.Fatalf("partition %d before the failover: LSO %d, %d batches; want 0, none (both transactions open)", tp.Partition, r.LastStableOffset, len(r.Batches))
			}
			return err
		})
	}
	stopped := coord.Name()
	if err := coord.Close(ctx); err != nil {
		t.Fatalf("stop %s: %v", stopped, err)
	}
	var rest []*server.Node
	for _, n := range nodes {
		if n.Name() != stopped {
			rest = append(rest, n)
		}
	}
	next := coordinating(rest)
	t.Logf("transactions moved from %s to %s", stopped, next.Name())
	for _, id := range []string{"fo", "fo-open"} {
		want := map[string]semantics.TxnState{"fo": semantics.TxnCompleteCommit, "fo-open": semantics.TxnCompleteAbort}[id]
		for {
			d, err := next.Transactions().Describe(id)
			if err == nil && d.State == want {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s after the failover: %+v, %v; want %s", id, d, err, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, tp := range parts {
		onLeader(rest, tp.Partition, func(n *server.Node) error {
			r, err := n.Fetcher().Fetch(ctx, server.FetchRequest{Topic: topic, Partition: tp.Partition, ReadCommitted: true})
			if err != nil {
				return err
			}
			var values []string
			for _, b := range r.Batches {
				h, _ := semantics.ParseBatchHeader(b)
				recs, err := semantics.DecodeRecords(nil, b, topic, tp.Partition)
				if err != nil {
					t.Fatal(err)
				}
				for _, rec := range recs {
					if !abortedAt(r.Aborted, h.ProducerID, rec.Offset) {
						values = append(values, string(rec.Value))
					}
				}
			}
			if r.LastStableOffset != r.HighWatermark || r.HighWatermark != 4 || !slices.Equal(values, []string{"commit-me"}) {
				ps, _ := n.Writers().Producers(topic, tp.Partition)
				t.Fatalf("partition %d after the failover (read on %s): LSO %d, HW %d, aborted %v, read committed %q, producers %+v; want LSO = HW = 4 (two records, two markers), commit-me",
					tp.Partition, n.Name(), r.LastStableOffset, r.HighWatermark, r.Aborted, values, ps)
			}
			return nil
		})
	}
	for {
		var got []semantics.OffsetEntry
		var err error
		for _, n := range rest {
			if got, err = n.Groups().FetchOffsets(ctx, groups.FetchRequest{Group: "fo-g"}); err == nil {
				break
			}
		}
		if err == nil {
			if len(got) != 1 || got[0].Offset != 42 {
				t.Fatalf("group offsets after the failover: %+v, want 42 on partition 0", got)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
