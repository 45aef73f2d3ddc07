//go:build chaos

package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestKafkaExactlyOnceCoordinatorStops runs the exactly-once pipeline of
// TestKafkaExactlyOncePipeline on a 3-node cluster (replicated topics) and stops
// the node coordinating transactions when a third of the input is processed: the
// transactions in flight are finished or aborted by the next coordinator, the
// members go on through the other nodes, and the read-committed output still
// holds every input record once, in key order. Behind the chaos tag (every
// transaction writes to replicated buckets; a run takes minutes on a loaded
// machine): go test -tags chaos -run TestKafkaExactlyOnceCoordinatorStops ./kafka/
// TestTxnCoordinatorFailover (server) covers the coordinator's own failover.
func TestKafkaExactlyOnceCoordinatorStops(t *testing.T) {
	t.Parallel()
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].KafkaListen = "127.0.0.1:0"
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	c, err := qxd.Connect(context.Background(), qxdtest.ClientURLs(nodes))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	qxdtest.CreateTopic(t, c, "eos-in", qxd.TopicConfig{Partitions: 3, Replicas: 3})
	qxdtest.CreateTopic(t, c, "eos-out", qxd.TopicConfig{Partitions: 3, Replicas: 3})
	ctx := ctxFor(t, 240*time.Second)
	var seeds []string
	for _, n := range nodes {
		seeds = append(seeds, n.KafkaAddr())
	}
	start := time.Now()
	runPipeline(ctx, t, seeds, 20, 100, 30*time.Second, false, func() {
		for {
			for _, n := range nodes {
				if n.Transactions().Coordinating() {
					t.Logf("stopping %s, which coordinates transactions, %v into the run", n.Name(), time.Since(start).Round(time.Millisecond))
					go func() {
						ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
						defer cancel()
						if err := n.Close(ctx); err != nil {
							t.Errorf("stop %s: %v", n.Name(), err)
						}
					}()
					return
				}
			}
			if ctx.Err() != nil {
				t.Fatal("no node coordinates transactions")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Logf("pipeline done %v after the start", time.Since(start).Round(time.Millisecond))
}
