//go:build chaos

package server_test

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestPausedLeaderSplitVotes pauses (SIGSTOP) the node leading about a third of
// a topic's many three-replica partitions and counts, per group it led, the
// elections its two healthy followers held before one of them led: the new
// leader's term less the paused one's. One is one follower calling case (c)'s
// election (raft_campaign.go) and the other granting its vote; two or more is
// both calling one (a split vote, which waits out an election timeout of
// 4–9 s) or one deposing the other. QXD_SPLIT_PARTITIONS sets the partitions
// (default 45).
func TestPausedLeaderSplitVotes(t *testing.T) {
	parts := 45
	if s := os.Getenv("QXD_SPLIT_PARTITIONS"); s != "" {
		parts, _ = strconv.Atoi(s)
	}
	ctx := qxdtest.Context(t, 3*time.Minute)
	nodes, child, victim := clusterWithChild(t, ctx)
	c := qxdtest.ConnectCluster(t, nodes)
	const topic = "split"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: int32(parts), Replicas: 3})
	p := qxdtest.NewProducer(t, c)
	produce := func() {
		for i := range int32(parts) {
			if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Partition: i, Value: []byte("v")}); err != nil {
				t.Fatalf("produce to partition %d: %v", i, err)
			}
		}
	}
	produce()
	js := qxdtest.JetStream(t, nodes[0])
	led := map[string]string{} // stream → RAFT group
	for i := range int32(parts) {
		stream := semantics.StreamName(topic, i)
		for {
			s, err := js.Stream(ctx, stream)
			if err != nil || s.CachedInfo().Cluster == nil {
				t.Fatalf("%s: %v", stream, err)
			}
			cl := s.CachedInfo().Cluster
			current := 0
			for _, r := range cl.Replicas {
				if r.Current {
					current++
				}
			}
			if current == 2 {
				if cl.Leader == victim {
					led[stream] = cl.RaftGroup
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: replicas not current", stream)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(led) == 0 {
		t.Skip("the child node leads no partition")
	}
	produce()
	terms := map[string]uint64{}
	for _, group := range led {
		terms[group] = nodes[0].RaftNode(group).Term()
	}
	paused := time.Now()
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	pending := map[string]bool{}
	for s := range led {
		pending[s] = true
	}
	stalls := map[string]time.Duration{}
	for len(pending) > 0 {
		for s := range pending {
			if who := streamLeader(nodes, s); who != "" {
				stalls[s] = time.Since(paused)
				delete(pending, s)
			}
		}
		if time.Since(paused) > 30*time.Second {
			t.Fatalf("no leader within 30s of the pause for %v", pending)
		}
		time.Sleep(10 * time.Millisecond)
	}
	split, worst := 0, time.Duration(0)
	for s, group := range led {
		var term uint64
		for _, n := range nodes {
			if rn := n.RaftNode(group); rn != nil && rn.Term() > term {
				term = rn.Term()
			}
		}
		elections := term - terms[group]
		worst = max(worst, stalls[s])
		mark := ""
		if elections > 1 {
			split++
			mark = " <- more than one election"
		}
		t.Logf("%s: %d election(s), leader after %v%s", s, elections, stalls[s].Round(time.Millisecond), mark)
	}
	fmt.Printf("SPLIT-SUMMARY groups=%d more-than-one-election=%d worst-stall=%v\n", len(led), split, worst.Round(time.Millisecond))
	if split > 0 {
		t.Errorf("%d of %d groups held more than one election after their leader's pause", split, len(led))
	}
}
