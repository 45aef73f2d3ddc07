package server

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// The node's upkeep in a cluster: work that runs in the background while the node
// serves, owned by the node and stopped first when it closes.
//
//   - qxd's own buckets are created with as many replicas as nodes are up when the
//     cluster first forms (a brand-new three-node cluster starts with two); once
//     enough nodes are up, the meta leader raises them to their target.
//   - Automatic preferred-leader election (see leaders_auto.go).
//   - Automatic repair of damaged partition copies and of partitions left short
//     of replicas (see repair_auto.go).
//   - The scrub of the node's own partition copies (see scrub.go), on every
//     node, a single one too.
//   - The watch for a cut from the cluster (see isolation.go), in its own loop:
//     the upkeep loop's requests can wait seconds.
//   - The watch that makes RAFT groups without a live leader campaign early (see
//     raft_campaign.go), in its own loop too.
//   - The offsets and transactions buckets' leadership follows the groups
//     bucket's, where the coordinators run (see leaders_follow.go), in its own
//     loop too.

// upkeepEvery is how often the upkeep loop looks at the buckets' replicas.
const upkeepEvery = 2 * time.Second

// systemBuckets are qxd's own KV buckets.
var systemBuckets = []string{
	semantics.TopicsBucket, semantics.PartitionsBucket, semantics.GroupsBucket,
	semantics.OffsetsBucket, semantics.TxnsBucket,
}

type upkeep struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startUpkeep starts the scrub, and the upkeep loop of a clustered node.
func (n *Node) startUpkeep() {
	ctx, cancel := context.WithCancel(context.Background())
	n.upkeep.cancel = cancel
	if n.cfg.scrubOn() {
		n.upkeep.wg.Add(1)
		go func() {
			defer n.upkeep.wg.Done()
			n.runScrub(ctx)
		}()
	}
	if !n.cfg.clustered() {
		return
	}
	n.upkeep.wg.Add(4)
	// The election watch reads what the isolation watch's probes heard.
	probes := newIsolationWatch(n.cfg.Name)
	n.probes.Store(probes)
	go func() {
		defer n.upkeep.wg.Done()
		n.watchIsolation(ctx, probes)
	}()
	go func() {
		defer n.upkeep.wg.Done()
		n.watchElections(ctx, probes)
	}()
	go func() {
		defer n.upkeep.wg.Done()
		n.runFollow(ctx)
	}()
	go func() {
		defer n.upkeep.wg.Done()
		everyTick(ctx, upkeepEvery, func() bool {
			n.raiseBucketReplicas(ctx)
			n.autoRebalance(ctx)
			n.autoRepair(ctx)
			return true
		})
	}()
}

// stopUpkeep stops the upkeep loop and waits for it. Idempotent.
func (n *Node) stopUpkeep() {
	if n.upkeep.cancel != nil {
		n.upkeep.cancel()
	}
	n.upkeep.wg.Wait()
}

// targetMetaReplicas is the replication factor qxd's own buckets should have: 3 in
// a cluster of at least three nodes, else 1.
func (n *Node) targetMetaReplicas() int {
	if !n.cfg.clustered() {
		return 1
	}
	if max(n.clusterSize(), n.configuredNodes) >= 3 {
		return 3
	}
	return 1
}

// metaReplicas is the replication factor qxd's buckets are created with: their
// target, or as many nodes as are up when fewer are (a brand-new cluster forms
// before all its nodes are up; raiseBucketReplicas raises them later).
func (n *Node) metaReplicas() int {
	return max(1, min(n.targetMetaReplicas(), len(n.onlineNodes())))
}

// raiseBucketReplicas raises the replicas of qxd's buckets to their target once
// enough nodes are up. Only the meta leader does it, so that nodes do not race.
func (n *Node) raiseBucketReplicas(ctx context.Context) {
	if !n.ns.JetStreamIsLeader() {
		return
	}
	target := n.targetMetaReplicas()
	if len(n.onlineNodes()) < target {
		return
	}
	for _, b := range n.buckets() {
		if ctx.Err() != nil {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := n.raiseReplicas(rctx, "KV_"+b, target)
		cancel()
		if err != nil {
			n.log.Warn("system bucket replicas not raised; will retry", "bucket", b, "replicas", target, "err", err)
		}
	}
}

func (n *Node) raiseReplicas(ctx context.Context, stream string, target int) error {
	s, err := n.js.Stream(ctx, stream)
	if err != nil {
		if err == jetstream.ErrStreamNotFound {
			return nil
		}
		return err
	}
	cfg := s.CachedInfo().Config
	if cfg.Replicas >= target {
		return nil
	}
	from := cfg.Replicas
	cfg.Replicas = target
	if _, err := n.js.UpdateStream(ctx, cfg); err != nil {
		return err
	}
	n.log.Info("system bucket replicas raised", "bucket", stream, "from", from, "replicas", target)
	return nil
}
