package qxd_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

func TestClusterBasics(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 60*time.Second)
	c, err := qxd.Connect(ctx, qxdtest.ClientURLs(nodes))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
	d, err := c.Admin().DescribeTopic(ctx, "rep")
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[string]int{}
	var total int64
	for _, pi := range d.Partitions {
		if len(pi.Replicas) != 3 || pi.Leader == "" {
			t.Fatalf("partition %d: leader %q replicas %v", pi.Partition, pi.Leader, pi.Replicas)
		}
		leaders[pi.Leader]++
		total += pi.Records
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
