package kafka_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// kafkaCluster is the package's 3-node cluster, each node with a Kafka listener
// on a free port, started by the first test that asks for it (sharedKafkaCluster)
// and stopped by TestMain. The tests on it create topics of their own
// (clusterTopic) and stop, pause and reconfigure no node. A test that moves a
// partition's leader moves only its own topic's, and runs serially (no
// t.Parallel), so no other test runs beside it; the tests that only read and
// write their own topics run in parallel.
var kafkaCluster = qxdtest.NewSharedCluster(3, func(cfgs []server.Config) {
	for i := range cfgs {
		cfgs[i].KafkaListen = "127.0.0.1:0"
	}
})

func TestMain(m *testing.M) {
	code := m.Run()
	kafkaCluster.Close()
	os.Exit(code)
}

// sharedKafkaCluster returns the nodes of the package's cluster, starting it on
// the first call (skipped with -short).
func sharedKafkaCluster(t *testing.T) []*server.Node {
	t.Helper()
	if testing.Short() {
		t.Skip("uses a 3-node cluster")
	}
	return kafkaCluster.Nodes(t)
}

// clusterTopics numbers the topics tests create on the shared cluster, so that
// each name is used once in a process (-count runs the tests again on it).
var clusterTopics atomic.Int64

// clusterTopic creates a topic named base and a number no other topic of this
// process has, and deletes it when the test ends, so the shared cluster is left
// as the test found it.
func clusterTopic(t *testing.T, c *qxd.Client, base string, cfg qxd.TopicConfig) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", base, clusterTopics.Add(1))
	qxdtest.CreateTopic(t, c, name, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Admin().DeleteTopic(ctx, name); err != nil {
			t.Logf("delete topic %s: %v", name, err)
		}
	})
	return name
}

// In a cluster every node is a broker: bootstrapping from any one node, a Kafka
// client sees all three with their own addresses, each partition's leader and
// replicas, produces to the leaders and reads back what it wrote.
func TestKafkaCluster(t *testing.T) {
	t.Parallel()
	nodes := sharedKafkaCluster(t)
	c := qxdtest.Connect(t, nodes[0])
	spread := clusterTopic(t, c, "spread", qxd.TopicConfig{Partitions: 6, Replicas: 3})
	ctx := ctxFor(t, 90*time.Second)

	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.KafkaAddr())
	}
	// The nodes' Kafka addresses are in qxd's cluster info too (qxd cluster info).
	for deadline := time.Now().Add(30 * time.Second); ; {
		info, err := c.Admin().ClusterInfo(ctx)
		var got []string
		for _, ni := range info.Nodes {
			got = append(got, ni.Kafka)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(addrs))
		if err == nil && slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster info Kafka addresses %v (err %v), want %v", got, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, n := range nodes {
		adm := kadm.NewClient(kafkaClient(t, n))
		md, err := adm.Metadata(ctx, spread)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		ids := map[int32]bool{}
		for _, b := range md.Brokers {
			got = append(got, fmt.Sprintf("%s:%d", b.Host, b.Port))
			ids[b.NodeID] = true
		}
		slices.Sort(got)
		want := slices.Clone(addrs)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("metadata from node %d lists brokers %v, want %v", i+1, got, want)
		}
		for _, p := range md.Topics[spread].Partitions {
			if !ids[p.Leader] || len(p.Replicas) != 3 {
				t.Fatalf("metadata from node %d: partition %d leader %d replicas %v", i+1, p.Partition, p.Leader, p.Replicas)
			}
		}
	}

	// A produce sent to a node that does not lead the partition is refused with
	// NOT_LEADER_OR_FOLLOWER, so the client reads the metadata again.
	probe := kafkaClient(t, nodes[0], byName())
	md, err := kadm.NewClient(probe).Metadata(ctx, spread)
	if err != nil {
		t.Fatal(err)
	}
	var self int32 = -1
	for _, b := range md.Brokers {
		if fmt.Sprintf("%s:%d", b.Host, b.Port) == nodes[0].KafkaAddr() {
			self = b.NodeID
		}
	}
	for _, p := range md.Topics[spread].Partitions {
		if p.Leader == self {
			continue
		}
		req := produceReq(-1, map[string]map[int32][]byte{spread: {p.Partition: batch(t, 1, 10)}})
		resp, err := probe.Broker(int(self)).Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		pr := resp.(*kmsg.ProduceResponse)
		if code := pr.Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
			t.Fatalf("produce to partition %d on a node that does not lead it: code %d, want NOT_LEADER_OR_FOLLOWER", p.Partition, code)
		}
		// Produce v10 (KIP-951): the answer names the leader and its address.
		if cur := pr.Topics[0].Partitions[0].CurrentLeader; cur.LeaderID != p.Leader || cur.LeaderEpoch != p.LeaderEpoch {
			t.Errorf("NOT_LEADER_OR_FOLLOWER names leader %d epoch %d, want %d epoch %d", cur.LeaderID, cur.LeaderEpoch, p.Leader, p.LeaderEpoch)
		}
		if len(pr.Brokers) != 1 || pr.Brokers[0].NodeID != p.Leader {
			t.Errorf("NOT_LEADER_OR_FOLLOWER gives brokers %+v, want the leader %d with its address", pr.Brokers, p.Leader)
		}
		break
	}

	cl := kafkaClient(t, nodes[1], kgo.DefaultProduceTopic(spread))
	acked := map[string]rec{}
	for i := range 60 {
		r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		acked[string(r.Value)] = rec{string(r.Key), string(r.Value), r.Partition, r.Offset}
	}
	cons := kafkaClient(t, nodes[2], kgo.ConsumeTopics(spread), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ConsumerGroup(spread+"-readers"))
	seen := 0
	for seen < len(acked) {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", seen, len(acked))
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			if g := (rec{string(r.Key), string(r.Value), r.Partition, r.Offset}); g != acked[string(r.Value)] {
				t.Errorf("read %v, producer was told %v", g, acked[string(r.Value)])
			}
		})
	}
}
