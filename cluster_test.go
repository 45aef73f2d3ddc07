package qxd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

func TestClusterBasics(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 60*time.Second)
	c := qxdtest.ConnectCluster(t, nodes)
	info, err := c.Admin().CreateTopic(ctx, "rep", qxd.TopicConfig{Partitions: 6, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	_ = info
	p, _ := c.NewProducer()
	defer p.Close(ctx)
	var recs []*qxd.Record
	for i := 0; i < 3000; i++ {
		recs = append(recs, &qxd.Record{Topic: "rep", Key: []byte(fmt.Sprint(i % 50)), Value: []byte(fmt.Sprint(i))})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	// Every acknowledged record is read back.
	if got := readTopic(t, c, "rep", 6, 3000); len(got) != 3000 {
		t.Fatalf("read %d records, want 3000", len(got))
	}
	// Describe reads each partition's state from its stream leader; leaders move
	// while the cluster spreads them, and a new leader may answer before it has
	// applied every committed append, so its count may lag for a moment.
	var d qxd.TopicDescription
	var leaders map[string]int
	var total int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if d, err = c.Admin().DescribeTopic(ctx, "rep"); err != nil {
			t.Fatal(err)
		}
		leaders, total = map[string]int{}, 0
		for _, pi := range d.Partitions {
			if len(pi.Replicas) != 3 || pi.Leader == "" {
				t.Fatalf("partition %d: leader %q replicas %v", pi.Partition, pi.Leader, pi.Replicas)
			}
			leaders[pi.Leader]++
			total += pi.Records
		}
		if total == 3000 || time.Now().After(deadline) {
			break
		}
		t.Logf("describe counts %d records of 3000; asking again", total)
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("partition leaders per node: %v", leaders)
	if len(leaders) != 3 {
		t.Errorf("partition leaders are not spread over the 3 nodes: %v", leaders)
	}
	for node, n := range leaders {
		if n != 2 {
			t.Errorf("node %s leads %d of 6 partitions, want 2 each: %v", node, n, leaders)
		}
	}
	if total != 3000 {
		t.Fatalf("records %d, want 3000", total)
	}
}

// TestAddNodeAndRebalance adds a fourth node to a running cluster and moves
// partitions onto it with RebalanceTopic; no record is lost on the way.
func TestAddNodeAndRebalance(t *testing.T) {
	t.Parallel()
	cfgs := qxdtest.ClusterConfigs(t, 4)
	for i := range cfgs[:3] {
		cfgs[i].Peers = cfgs[i].Peers[:3] // the cluster as it was before n4
	}
	nodes := qxdtest.StartCluster(t, cfgs[:3])
	ctx := qxdtest.Context(t, 3*time.Minute)
	c := qxdtest.ConnectCluster(t, nodes)
	if _, err := c.Admin().CreateTopic(ctx, "grow", qxd.TopicConfig{Partitions: 8, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	p, _ := c.NewProducer()
	defer p.Close(ctx)
	var recs []*qxd.Record
	for i := 0; i < 2000; i++ {
		recs = append(recs, &qxd.Record{Topic: "grow", Key: []byte(fmt.Sprint(i % 97)), Value: []byte(fmt.Sprint(i))})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}

	before, err := c.Admin().DescribeTopic(ctx, "grow")
	if err != nil {
		t.Fatal(err)
	}
	qxdtest.StartCluster(t, cfgs[3:]) // n4 joins the running cluster
	for {
		info, err := c.Admin().ClusterInfo(ctx)
		up := 0
		for _, n := range info.Nodes {
			if n.Up {
				up++
			}
		}
		if err == nil && up == 4 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the fourth node never joined: %+v %v", info, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The node answering may learn of n4 a little after the others: rebalance until
	// it has moved replicas (each call moves what it sees as unbalanced).
	var res qxd.RebalanceResult
	for {
		res, err = c.Admin().RebalanceTopic(ctx, "grow")
		if err != nil {
			t.Fatalf("rebalance: %v (moves so far %v)", err, res.Moves)
		}
		if len(res.Moves) > 0 || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("moves: %v; leaderships moved: %d", res.Moves, res.LeadersMoved)
	// Leaderships that just moved settle within moments.
	var d qxd.TopicDescription
	for {
		d, err = c.Admin().DescribeTopic(ctx, "grow")
		settled := err == nil
		for _, pi := range d.Partitions {
			settled = settled && pi.Problem == "" && pi.Leader != ""
		}
		if settled {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("partitions did not settle: %+v %v", d.Partitions, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	perNode := map[string]int{}
	var total int64
	for _, pi := range d.Partitions {
		for _, r := range pi.Replicas {
			perNode[r]++
		}
		total += pi.Records
	}
	t.Logf("replicas per node after rebalance: %v", perNode)
	if perNode["n4"] < 5 || len(perNode) != 4 {
		t.Fatalf("replicas per node %v: the new node should hold 6 of 24", perNode)
	}
	for node, n := range perNode {
		if n < 5 || n > 7 {
			t.Fatalf("node %s holds %d replicas after rebalance: %v", node, n, perNode)
		}
	}
	// Every acknowledged record is still there, each once.
	seen := map[string]bool{}
	for _, r := range readTopic(t, c, "grow", 8, 2000) {
		if seen[string(r.Value)] {
			t.Fatalf("record %s read twice after moving replicas", r.Value)
		}
		seen[string(r.Value)] = true
	}
	// Right after a move, the stream info a describe reads may come from a leader
	// still applying what it was sent: wait for the count (a lost record showed
	// above), and name each partition if it never comes.
	for deadline := time.Now().Add(60 * time.Second); total != 2000; {
		if time.Now().After(deadline) {
			for i, pi := range d.Partitions {
				b := before.Partitions[i]
				t.Logf("partition %d: before the move leader %s, high watermark %d, %d batches; now leader %s replicas %v, log start %d, high watermark %d, %d batches",
					pi.Partition, b.Leader, b.HighWatermark, b.Batches, pi.Leader, pi.Replicas, pi.LogStartOffset, pi.HighWatermark, pi.Batches)
			}
			t.Fatalf("records after moving replicas: %d, want 2000", total)
		}
		time.Sleep(200 * time.Millisecond)
		d, err = c.Admin().DescribeTopic(ctx, "grow")
		if err != nil {
			continue
		}
		total = 0
		for _, pi := range d.Partitions {
			total += pi.Records
		}
	}
}

// TestAssignRightAfterLeaderLoss assigns a partition whose leader's node has just
// died: Assign waits for the new leader instead of failing, and starts at the
// partition's start.
func TestAssignRightAfterLeaderLoss(t *testing.T) {
	t.Parallel()
	cons, _ := assignAfterLeaderLoss(t)
	if off, ok := cons.Position("lost", 0); !ok || off != 0 {
		t.Fatalf("position after assign: %d, %v; want 0, assigned", off, ok)
	}
}

// assignAfterLeaderLoss stores 100 records in a one-partition replicated topic, kills
// the partition leader's node and assigns the partition from its start on a client of
// a surviving node.
func assignAfterLeaderLoss(t *testing.T) (*qxd.Consumer, int) {
	t.Helper()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 60*time.Second)
	admin := qxdtest.Connect(t, nodes[0])
	qxdtest.CreateTopic(t, admin, "lost", qxd.TopicConfig{Partitions: 1, Replicas: 3})
	p, err := admin.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	var recs []*qxd.Record
	for i := range 100 {
		recs = append(recs, &qxd.Record{Topic: "lost", Value: []byte(fmt.Sprint(i))})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	p.Close(ctx)
	var survivor *server.Node
	for _, n := range nodes {
		if n.NATSServer().JetStreamIsStreamLeader("$G", semantics.StreamName("lost", 0)) {
			n.NATSServer().Shutdown()
		} else if survivor == nil {
			survivor = n
		}
	}
	c := qxdtest.Connect(t, survivor)
	cons := qxdtest.NewConsumer(t, c)
	t.Cleanup(func() { cons.Close(context.Background()) })
	// No time is asserted: the in-process node's shutdown is clean, no crash, and
	// with two test runs sharing two cores the survivors' elections took tens of
	// seconds. Assign must wait for them rather than fail.
	actx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	if err := cons.Assign(actx, qxd.Assignment{Topic: "lost", Offset: qxd.AtStart()}); err != nil {
		t.Fatalf("assign right after the leader's node died, after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	t.Log("assigned after the leader's node stopped")
	return cons, len(recs)
}
