package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// leadersOf counts the partitions of topic each node leads.
func leadersOf(ctx context.Context, c *qxd.Client, topic string) (map[string]int, error) {
	d, err := c.Admin().DescribeTopic(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, p := range d.Partitions {
		out[p.Leader]++
	}
	return out, nil
}

// waitLeaders waits until check passes on the leader counts of topic, or fails the
// test after d.
func waitLeaders(t *testing.T, c *qxd.Client, topic string, d time.Duration, check func(map[string]int) error) map[string]int {
	t.Helper()
	ctx := qxdtest.Context(t, d+30*time.Second)
	deadline := time.Now().Add(d)
	for {
		leads, err := leadersOf(ctx, c, topic)
		if err == nil {
			err = check(leads)
		}
		if err == nil {
			return leads
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition leaders of %s after %v: %v (%v)", topic, d, leads, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func spread(names []string, each int) func(map[string]int) error {
	return func(leads map[string]int) error {
		for _, n := range names {
			if leads[n] != each {
				return fmt.Errorf("node %s leads %d partitions, want %d", n, leads[n], each)
			}
		}
		return nil
	}
}

// restartNode stops node i of the cluster and starts it again on its data.
func restartNode(t *testing.T, cfgs []server.Config, nodes []*server.Node, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := nodes[i].Close(ctx); err != nil {
		t.Fatalf("stop %s: %v", cfgs[i].Name, err)
	}
	n, err := server.Start(ctx, cfgs[i])
	if err != nil {
		t.Fatalf("restart %s: %v", cfgs[i].Name, err)
	}
	nodes[i] = n
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
}

// After a node of a three-node cluster restarts, the partition leaderships it
// handed off when it stopped come back to it: each node leads its share again.
// With automatic rebalancing off, they stay where they went.
func TestAutoLeaderRebalance(t *testing.T) {
	t.Parallel()
	for _, auto := range []bool{true, false} {
		t.Run(fmt.Sprintf("auto=%t", auto), func(t *testing.T) {
			t.Parallel()
			cfgs := qxdtest.ClusterConfigs(t, 3)
			for i := range cfgs {
				cfgs[i].AutoLeaderRebalance = auto
				cfgs[i].LeaderImbalanceCheckInterval = time.Second
			}
			nodes := qxdtest.StartCluster(t, cfgs)
			c := qxdtest.Connect(t, nodes[0])
			qxdtest.CreateTopic(t, c, "spread", qxd.TopicConfig{Partitions: 6, Replicas: 3})
			names := []string{"n1", "n2", "n3"}
			waitLeaders(t, c, "spread", 30*time.Second, spread(names, 2))

			restartNode(t, cfgs, nodes, 1)
			if auto {
				began := time.Now()
				waitLeaders(t, c, "spread", 60*time.Second, spread(names, 2))
				t.Logf("leaders back to their spread %v after the restart", time.Since(began).Round(time.Millisecond))
				return
			}
			// Off: several check intervals later, the restarted node still leads nothing.
			time.Sleep(8 * time.Second)
			waitLeaders(t, c, "spread", 10*time.Second, func(leads map[string]int) error {
				if leads["n2"] != 0 {
					return fmt.Errorf("node n2 leads %d partitions with automatic rebalancing off", leads["n2"])
				}
				return nil
			})
		})
	}
}
