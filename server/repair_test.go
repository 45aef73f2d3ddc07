package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestRepairRebuildsCopyOnThreeNodes records damage on a follower's copy of a
// three-replica partition on three nodes (no node to spare) and repairs it: the
// other two copies are verified first, the damaged node's copy is dropped and
// placed on the same node again, verified intact there, and the damage record
// is gone. Every record stays readable. Bad requests are refused first and change
// nothing.
func TestRepairRebuildsCopyOnThreeNodes(t *testing.T) {
	nodes := sharedRepairCluster(t)
	fix := repairTopic(t, nodes[0], "fix")
	single := repairTopic(t, nodes[0], "single")
	ctx := qxdtest.Context(t, 5*time.Minute)
	a := nodes[0].Admin()
	for _, tc := range []semantics.CreateTopicRequest{
		{Name: fix, Config: semantics.TopicConfig{Partitions: 1, Replicas: 3}},
		{Name: single, Config: semantics.TopicConfig{Partitions: 1, Replicas: 1}},
	} {
		if _, _, err := a.CreateTopic(ctx, tc); err != nil {
			t.Fatal(err)
		}
	}
	const batches = 50
	nc, err := nats.Connect(nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i := range batches {
		if _, err := produceRaw(t, nc, fix, 0, buildBatch(t, semantics.NoProducer, "a", "b", strings.Repeat("x", i))); err != nil {
			t.Fatal(err)
		}
	}
	d, err := a.DescribeTopic(ctx, fix)
	if err != nil {
		t.Fatal(err)
	}
	leader := d.Partitions[0].Leader
	var victim string
	for _, r := range d.Partitions[0].Replicas {
		if r != leader {
			victim = r
			break
		}
	}

	// Refused, changing nothing.
	for _, tc := range []struct {
		name string
		req  semantics.RepairPartitionRequest
		want *semantics.Error
		text string
	}{
		{"unknown topic", semantics.RepairPartitionRequest{Name: "nope"}, semantics.ErrUnknownTopic, ""},
		{"unknown partition", semantics.RepairPartitionRequest{Name: fix, Partition: 1}, semantics.ErrUnknownTopic, "partitions 0 to 0"},
		{"one replica", semantics.RepairPartitionRequest{Name: single, Node: leader}, semantics.ErrInvalidRequest, "one replica"},
		{"no damage recorded", semantics.RepairPartitionRequest{Name: fix}, semantics.ErrInvalidRequest, "no damage recorded"},
		{"node without a copy", semantics.RepairPartitionRequest{Name: fix, Node: "n9"}, semantics.ErrInvalidRequest, "holds no copy"},
	} {
		_, err := a.RepairPartition(ctx, tc.req)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: repair gave %v; want %v saying %q", tc.name, err, tc.want, tc.text)
		}
	}

	dm := semantics.BatchDamage{Kind: semantics.DamageCorrupt, FromSeq: 5, ToSeq: 5, FromOffset: 12, ToOffset: 14, Node: victim,
		Detail: "the batch fails its checks"}
	if err := a.ReportDamage(ctx, semantics.ReportDamageRequest{Name: fix, Partition: 0, Damage: dm, Recovered: true}); err != nil {
		t.Fatal(err)
	}
	for { // the node answering the repair reads the record from its replica of the bucket
		d, err := nodes[1].Admin().DescribeTopic(ctx, fix)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Partitions[0].Damaged) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	began := time.Now()
	resp, err := nodes[1].Admin().RepairPartition(ctx, semantics.RepairPartitionRequest{Name: fix, Partition: 0})
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	t.Logf("repair of node %s's copy took %v: %+v", victim, time.Since(began).Round(time.Millisecond), resp)
	if resp.Node != victim || resp.Rebuilt != victim || len(resp.Verified) != 2 || slices.Contains(resp.Verified, victim) ||
		len(resp.Replicas) != 3 || !slices.Contains(resp.Replicas, victim) || resp.Batches != batches {
		t.Fatalf("repair answered %+v; want node %s's copy rebuilt there, the two others verified, %d batches", resp, victim, batches)
	}
	// Node n1 reads the record from its replica of the bucket, which may lag the
	// repairing node's write for a moment.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		d, err = a.DescribeTopic(ctx, fix)
		if err != nil {
			t.Fatal(err)
		}
		p := d.Partitions[0]
		if p.Damage == "" && len(p.Damaged) == 0 && len(p.InSync) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("describe after the repair: %+v; want no damage and three replicas in sync", p)
		}
	}
	// Each copy reads back whole.
	verifyIntact(ctx, t, a, fix, batches, "the repair")
}

// TestRepairRefusesWhileReplicaDown: with one of the three nodes stopped, a repair
// of another node's copy would leave a single copy; it is refused with a one-line
// error naming the partition and what to do, and the partition keeps its three
// replicas.
func TestRepairRefusesWhileReplicaDown(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, manualRepairConfigs(t))
	ctx := qxdtest.Context(t, 2*time.Minute)
	a := nodes[0].Admin()
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: "down", Config: semantics.TopicConfig{Partitions: 1, Replicas: 3}}); err != nil {
		t.Fatal(err)
	}
	d, err := a.DescribeTopic(ctx, "down")
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].Close(ctx); err != nil {
		t.Fatal(err)
	}
	victim := "n2"
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) { // the leader notices n3 is gone
		d, err = a.DescribeTopic(ctx, "down")
		if err == nil && len(d.Partitions[0].InSync) < 3 && d.Partitions[0].Leader != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after node n3 stopped, describe gives %+v, %v; want a leader and fewer than three replicas in sync", d, err)
		}
	}
	_, err = a.RepairPartition(ctx, semantics.RepairPartitionRequest{Name: "down", Partition: 0, Node: victim})
	if !errors.Is(err, semantics.ErrInvalidRequest) || !strings.Contains(err.Error(), "partition down/0 cannot be repaired now") ||
		!strings.Contains(err.Error(), "n3") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("repair with node n3 down gave %v; want a one-line refusal naming the partition and node n3", err)
	}
	t.Logf("refused: %v", err)
	js := qxdtest.JetStream(t, nodes[0])
	s, err := js.Stream(ctx, semantics.StreamName("down", 0))
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("after the refused repair the stream has %d replicas configured; want 3", r)
	}
}

// TestVerifyOnReplica verifies each replica's copy of a three-replica partition,
// not only the leader's: each answer names the node read, which led the partition
// while it was read; a reader's damage report against a follower's copy is
// cleared once that copy is read back intact; a node that holds no copy is
// refused.
func TestVerifyOnReplica(t *testing.T) {
	nodes := sharedRepairCluster(t)
	each := repairTopic(t, nodes[0], "each")
	ctx := qxdtest.Context(t, 2*time.Minute)
	a := nodes[0].Admin()
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: each, Config: semantics.TopicConfig{Partitions: 1, Replicas: 3}}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for range 5 {
		if _, err := produceRaw(t, nc, each, 0, buildBatch(t, semantics.NoProducer, "a", "b")); err != nil {
			t.Fatal(err)
		}
	}
	d, err := a.DescribeTopic(ctx, each)
	if err != nil {
		t.Fatal(err)
	}
	var follower string
	for _, r := range d.Partitions[0].Replicas {
		if r != d.Partitions[0].Leader {
			follower = r
		}
	}
	dm := semantics.BatchDamage{Kind: semantics.DamageCorrupt, FromSeq: 2, ToSeq: 2, FromOffset: 2, ToOffset: 3, Node: follower, Detail: "fails its checks"}
	if err := a.ReportDamage(ctx, semantics.ReportDamageRequest{Name: each, Partition: 0, Damage: dm}); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"n1", "n2", "n3"} {
		v, err := a.VerifyPartition(ctx, semantics.VerifyPartitionRequest{Name: each, Partition: 0, NextOffset: -1, Node: node})
		if err != nil || v.Leader != node || v.Batches != 5 || len(v.Damage) > 0 || v.NextSeq != 0 {
			t.Errorf("verify on node %s: %+v, %v; want node %s's 5 batches read intact", node, v, err, node)
		}
	}
	// The describing node reads the record from its replica of the bucket, which
	// may lag the verifying node's write for a moment.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		d, err := a.DescribeTopic(ctx, each)
		if err == nil && len(d.Partitions[0].Damaged) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("describe after every copy was verified intact: damaged %+v (%v); want none (the report named follower %s)", d.Partitions[0].Damaged, err, follower)
			break
		}
	}
	_, err = a.VerifyPartition(ctx, semantics.VerifyPartitionRequest{Name: each, Partition: 0, NextOffset: -1, Node: "n9"})
	if !errors.Is(err, semantics.ErrInvalidRequest) || !strings.Contains(err.Error(), "holds no copy") {
		t.Errorf("verify on node n9, which holds no copy, gave %v; want a refusal", err)
	}
}

// manualRepairCluster is three nodes with the automatic repair off, shared by the
// tests that record damage on a partition of their own and verify or repair
// it (sharedRepairCluster), and stopped by TestMain. They move their own
// partition's leader (verify) or drop and place again its copy on a node
// (repair), so they run serially (no t.Parallel): no other test runs beside
// them on it.
var manualRepairCluster = qxdtest.NewSharedCluster(3, func(cfgs []server.Config) {
	for i := range cfgs {
		cfgs[i].AutoRepair = false
	}
})

func TestMain(m *testing.M) {
	code := m.Run()
	manualRepairCluster.Close()
	os.Exit(code)
}

// sharedRepairCluster returns the nodes of manualRepairCluster, starting it on the
// first call.
func sharedRepairCluster(t *testing.T) []*server.Node {
	t.Helper()
	return manualRepairCluster.Nodes(t)
}

// repairTopics numbers the topics made on manualRepairCluster, so that each name is
// used once in a process (-count runs the tests again on it).
var repairTopics atomic.Int64

// repairTopic names a topic base and a number no other topic of this process
// has; the topic, created by the test, is deleted when the test ends, so the
// shared cluster is left as the test found it.
func repairTopic(t *testing.T, n *server.Node, base string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", base, repairTopics.Add(1))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := n.Admin().DeleteTopic(ctx, semantics.DeleteTopicRequest{Name: name}); err != nil && !errors.Is(err, semantics.ErrUnknownTopic) {
			t.Logf("delete topic %s: %v", name, err)
		}
	})
	return name
}

// manualRepairConfigs are three nodes' configs with the automatic repair off,
// for tests that record damage and repair it on request.
func manualRepairConfigs(t *testing.T) []server.Config {
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].AutoRepair = false
	}
	return cfgs
}
