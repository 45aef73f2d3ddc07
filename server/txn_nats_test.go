package server_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// waitLSO waits until every node's describe of topic gives partition p the last
// stable offset want (nodes that do not lead it ask the one that does).
func waitLSO(ctx context.Context, t *testing.T, nodes []*server.Node, topic string, want map[int32]int64) {
	t.Helper()
	for _, n := range nodes {
		for {
			d, err := n.Admin().DescribeTopic(ctx, topic)
			ok := err == nil
			for _, pi := range d.Partitions {
				if w, in := want[pi.Partition]; in && pi.LastStableOffset != w {
					ok = false
					err = errors.New(semantics.PartitionString(topic, pi.Partition) + ": LSO " +
						itoa(pi.LastStableOffset) + ", want " + itoa(w) + " (high watermark " + itoa(pi.HighWatermark) + ")")
				}
			}
			if ok {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("describe on %s: %v", n.Name(), err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestDescribeShowsLastStableOffset: describe, on every node of a cluster, gives
// each partition's last stable offset: the first offset of an open transaction,
// the high watermark once it commits.
func TestDescribeShowsLastStableOffset(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 60*time.Second)
	c, err := qxd.Connect(ctx, qxdtest.ClientURLs(nodes))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	const topic = "txn-lso"
	const parts = 3
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: parts, Replicas: 3})

	var coord *server.Node
	for coord == nil {
		for _, n := range nodes {
			if n.Transactions().Coordinating() {
				coord = n
			}
		}
		if ctx.Err() != nil {
			t.Fatal("no node coordinates transactions")
		}
		time.Sleep(50 * time.Millisecond)
	}
	tx := coord.Transactions()
	pid, epoch := initTxn(ctx, t, tx, "lso", time.Minute)
	var tps []semantics.TopicPartition
	for p := int32(0); p < parts; p++ {
		tps = append(tps, semantics.TopicPartition{Topic: topic, Partition: p})
	}
	if err := tx.AddPartitions(ctx, "lso", pid, epoch, tps); err != nil {
		t.Fatal(err)
	}
	// onLeader appends batch to partition p on the node leading it.
	onLeader := func(p int32, batch []byte) {
		t.Helper()
		for {
			for _, n := range nodes {
				_, err := n.Writers().Append(ctx, topic, p, append([]byte(nil), batch...))
				if err == nil {
					return
				}
				if !errors.Is(err, semantics.ErrNotLeader) {
					t.Fatalf("append to partition %d on %s: %v", p, n.Name(), err)
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("partition %d: no node leads it", p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	open := map[int32]int64{}
	for p := int32(0); p < parts; p++ {
		onLeader(p, buildBatch(t, semantics.NoProducer, "plain", "plain"))
		onLeader(p, txnBatch(t, pid, epoch, 0, "t1", "t2", "t3"))
		open[p] = 2
	}
	waitLSO(ctx, t, nodes, topic, open)

	if err := tx.EndTxn(ctx, "lso", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	done := map[int32]int64{}
	for p := int32(0); p < parts; p++ {
		done[p] = 6 // two records, three in the transaction, its marker
	}
	waitLSO(ctx, t, nodes, topic, done)
}
