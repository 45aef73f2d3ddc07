package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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
	c := qxdtest.ConnectCluster(t, nodes)
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
	retryTxn(ctx, t, "add the partitions", func() error { return tx.AddPartitions(ctx, "lso", pid, epoch, tps) })
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

	retryTxn(ctx, t, "commit", func() error { return tx.EndTxn(ctx, "lso", pid, epoch, true) })
	done := map[int32]int64{}
	for p := int32(0); p < parts; p++ {
		done[p] = 6 // two records, three in the transaction, its marker
	}
	waitLSO(ctx, t, nodes, topic, done)
}

// askLSO sends a read-committed reader's request for the last stable offset of
// partition p of topic, as the SDK does, and returns the answer's error (or the
// request's) and how long it took.
func askLSO(t *testing.T, url, topic string, p int32) (error, time.Duration) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	m, err := nc.Request(semantics.LSOSubject(topic, p), []byte(`{"from":0}`), 5*time.Second)
	if err == nil {
		var r semantics.StableReply
		if jerr := json.Unmarshal(m.Data, &r); jerr != nil {
			t.Fatalf("malformed answer %q: %v", m.Data, jerr)
		}
		err = r.Error.Err()
	}
	return err, time.Since(start)
}

// TestLSOWithoutWriterAnswersPromptly: a request for the last stable offset of a
// partition no writer serves (here one the topic does not have) is refused at
// once (no responders), not left to the requester's timeout.
func TestLSOWithoutWriterAnswersPromptly(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "lso-nowriter", qxd.TopicConfig{Partitions: 1})
	// The partition that exists answers, once its writer is up.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err, took := askLSO(t, n.ClientURL(), "lso-nowriter", 0)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition 0: %v after %v", err, took)
		}
	}
	for _, tc := range []struct {
		topic string
		p     int32
	}{{"lso-nowriter", 3}, {"no-such-topic", 0}} {
		err, took := askLSO(t, n.ClientURL(), tc.topic, tc.p)
		if !errors.Is(err, nats.ErrNoResponders) || took > 500*time.Millisecond {
			t.Errorf("%s: %v after %v, want no responders at once", semantics.PartitionString(tc.topic, tc.p), err, took)
		}
	}
}

// TestLSOOfLeaderlessPartitionAnswersPromptly: a request for the last stable
// offset of a partition whose only replica's node is down (no leader, no writer)
// is refused at once, on every node up.
func TestLSOOfLeaderlessPartitionAnswersPromptly(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 60*time.Second)
	c := qxdtest.ConnectCluster(t, nodes)
	const topic = "lso-leaderless"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 3, Replicas: 1})
	// A partition and the node leading it, once its writer answers.
	var p int32 = -1
	var down *server.Node
	for p < 0 {
		d, err := nodes[0].Admin().DescribeTopic(ctx, topic)
		if err == nil {
			for _, pi := range d.Partitions {
				for _, n := range nodes {
					if pi.Leader == n.Name() && p < 0 {
						if aerr, _ := askLSO(t, nodes[0].ClientURL(), topic, pi.Partition); aerr == nil {
							p, down = pi.Partition, n
						}
					}
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no partition of %s answers its last stable offset: %v", topic, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := down.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n == down {
			continue
		}
		err, took := askLSO(t, n.ClientURL(), topic, p)
		if !errors.Is(err, nats.ErrNoResponders) || took > 500*time.Millisecond {
			t.Errorf("via %s, partition %d of %s (its node %s down): %v after %v, want no responders at once", n.Name(), p, topic, down.Name(), err, took)
		}
	}
}
