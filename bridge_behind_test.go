package qxd_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestBridgeDescribedPastABucketReplicaLeftBehind creates bridges and at once
// describes and deletes each while a member of the bridges bucket's direct-get
// queue group holds only the bucket's first definition (a mirror of the bucket's
// stream that refuses messages past its first, which JetStream puts into the
// stream's queue group, as a replica cut from the bucket's leader answers). Read
// as a replica holds them, about half the describes and deletes said the bridge
// just created does not exist. The bridges are "fast" ones: a reliable bridge's
// delete waits for its group to empty.
func TestBridgeDescribedPastABucketReplicaLeftBehind(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 120*time.Second)
	qxdtest.CreateTopic(t, c, "orders", qxd.TopicConfig{Partitions: 1})
	mirror := qxdtest.HoldBucketBehind(ctx, t, js, semantics.BridgesBucket, 1)
	if _, err := c.Admin().CreateBridge(ctx, qxd.EgressBridge("first", "orders", "shop.first.{key}", "fast")); err != nil {
		t.Fatal(err)
	}
	qxdtest.WaitHeld(ctx, t, mirror, 1)
	// Each direct get reaches the mirror with probability 1/2: 20 rounds of two
	// reads all miss it with probability 2^-40.
	for round := range 20 {
		name := fmt.Sprintf("b%d", round)
		if _, err := c.Admin().CreateBridge(ctx, qxd.EgressBridge(name, "orders", "shop."+name+".{key}", "fast")); err != nil {
			t.Fatalf("round %d: create bridge %s: %v", round, name, err)
		}
		if _, err := c.Admin().DescribeBridge(ctx, name); err != nil {
			t.Errorf("round %d: describe bridge %s just created: %v", round, name, err)
		}
		if err := c.Admin().DeleteBridge(ctx, name); err != nil {
			t.Errorf("round %d: delete bridge %s just created: %v", round, name, err)
		}
	}
}
