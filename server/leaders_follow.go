package server

import (
	"context"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

// The coordinators' buckets are led from one node. The group coordinator, and the
// transaction coordinator beside it, run on the node that leads the groups bucket's
// stream (groups.go, txn.go); every commit they take is written to the offsets
// bucket, every transaction step to the transactions bucket. Each bucket is a RAFT
// group of its own, so their leaders fall where elections put them, and a
// coordinator whose offsets bucket is led from another node needs that node for
// every commit: in a cut between the two (each still reaching a third node), every
// commit of every group stands still until the cut heals. Kafka has no such pair:
// a group's coordinator is the leader of its __consumer_offsets partition.
//
// So the buckets the coordinators write follow the groups bucket: the node leading
// the groups bucket asks for their leadership whenever another node leads them.
// The groups bucket is the one that leads because moving it costs more: the
// coordinators stop on one node and start on another, loading every group and
// transaction, and members find the new coordinator; a bucket without a
// coordinator of its own moves in one election. To cause no churn:
//
//   - it is automatic leader placement, on with Config.AutoLeaderRebalance;
//   - only the node that leads the groups bucket asks, and not while it is cut
//     off from its cluster (isolation.go) nor within wakeHoldFor after it woke
//     from a pause (raft_wake.go);
//   - only when its own replica of the bucket is current, so that JetStream does
//     not hand the leadership to a third node instead;
//   - after each move it asks for, and each look at a bucket that cannot move
//     here (its leader does not answer, no replica here), it waits before looking
//     again, longer each time the bucket is found apart again, up to
//     followMaxWait; the wait starts over once the bucket stayed together for
//     followCalm. A replica here that is behind is looked at again each second
//     (one request to the bucket's leader) until it is current;
//   - the loop is the upkeep's, stopped before a node that stops hands its
//     leaderships off (handOffLeadership keeps the buckets together itself);
//   - the automatic leader rebalance (leaders_auto.go) moves partitions only,
//     never a bucket.
//
// A cut between the groups bucket's leader's node and a follower bucket's
// leader's node, while both reach a third, leaves the groups bucket's leader
// unable to ask for the follower bucket, and the buckets apart: so it hands
// the groups bucket to the third node instead (handGroupsAcross), whose follow
// loop brings the follower bucket over.

// followerBuckets are the buckets the coordinators write on the groups bucket's
// leader: committed offsets, and transactions.
var followerBuckets = []string{semantics.OffsetsBucket, semantics.TxnsBucket}

const (
	// followEvery is how often the groups bucket's leader looks at where the
	// follower buckets are led: a local look, no request, while they are together.
	followEvery = time.Second
	// followFirstWait is how long after a move asked for, or a look at a bucket
	// that cannot move here, the bucket is not looked at again; it doubles each
	// time the bucket is found apart again, up to followMaxWait.
	followFirstWait = 2 * time.Second
	followMaxWait   = time.Minute
	// followCalm is how long a bucket stays together before its wait starts over.
	followCalm = time.Minute
)

// followState is, per follower bucket, the follow loop's memory.
type followState struct {
	asked map[string]time.Time     // when its leadership was last asked for
	wait  map[string]time.Duration // how long after that not to ask again
}

// runFollow keeps the follower buckets led from the groups bucket's leader until
// ctx ends. Its own loop: the upkeep loop's requests can wait seconds.
func (n *Node) runFollow(ctx context.Context) {
	st := &followState{asked: map[string]time.Time{}, wait: map[string]time.Duration{}}
	everyTick(ctx, followEvery, func() bool {
		n.followGroups(ctx, st, time.Now())
		return true
	})
}

// followGroups asks, on the groups bucket's leader, for the leadership of each
// follower bucket led elsewhere (see the comment at the top of the file).
func (n *Node) followGroups(ctx context.Context, st *followState, now time.Time) {
	if !n.cfg.AutoLeaderRebalance || n.isolated.Load() || !n.isStreamLeader(semantics.KVStream(semantics.GroupsBucket)) {
		return
	}
	if w := n.woke.Load(); w != 0 && now.Sub(time.Unix(0, w)) < wakeHoldFor {
		return // a node just back leads no more than it must (raft_wake.go)
	}
	if n.handGroupsAcross(ctx, st, now) {
		return
	}
	for _, b := range followerBuckets {
		stream := semantics.KVStream(b)
		if n.isStreamLeader(stream) {
			if now.Sub(st.asked[b]) > followCalm {
				delete(st.wait, b)
			}
			continue
		}
		if wait, ok := st.wait[b]; ok && now.Sub(st.asked[b]) < wait {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		wait := followFirstWait
		if w, ok := st.wait[b]; ok {
			wait = min(2*w, followMaxWait)
		}
		ready := n.followReady(ctx, stream)
		if ready == followBehind {
			continue // looked at again at the next tick: a replica catches up in moments
		}
		st.asked[b], st.wait[b] = now, wait
		if ready == followNo {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := n.stepDown(rctx, stream, n.cfg.Name)
		cancel()
		if err != nil {
			n.log.Debug("bucket leadership not moved to the group coordinator; will retry", "bucket", b, "err", err)
			continue
		}
		n.log.Info("bucket leadership moved to the group coordinator's node", "bucket", b)
	}
}

// handGroupsAcross hands the groups bucket's leadership, and the coordinators
// with it, to a third node when the way between this node and a follower
// bucket's leader's node is cut while both reach that third node (the
// isolation watch's cut, confirmed by this node's RAFT groups: cutPeer). This
// node cannot ask that leader for the bucket, and NATS routes do not relay:
// every commit (or transaction step) would stand still until the cut heals.
// The third node reaches the follower bucket's leader, and its own follow loop
// then brings that bucket over too. At most once per followFirstWait; it
// reports whether it asked.
func (n *Node) handGroupsAcross(ctx context.Context, st *followState, now time.Time) bool {
	p := n.cutPeer.Load()
	if p == nil || *p == "" || now.Sub(st.asked[semantics.GroupsBucket]) < followFirstWait {
		return false
	}
	cut := *p
	apart := ""
	for _, b := range followerBuckets {
		if n.localLeader(semantics.KVStream(b)) == raftPeerID(cut) {
			apart = b
			break
		}
	}
	if apart == "" {
		return false
	}
	stream := semantics.KVStream(semantics.GroupsBucket)
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := n.js.Stream(rctx, stream)
	if err != nil || s.CachedInfo().Cluster == nil {
		return false
	}
	to := ""
	for _, r := range s.CachedInfo().Cluster.Replicas {
		if r != nil && r.Name != cut && r.Name != n.cfg.Name && r.Current && !r.Offline {
			to = r.Name
			break
		}
	}
	if to == "" {
		return false
	}
	st.asked[semantics.GroupsBucket] = now
	if err := n.stepDown(rctx, stream, to); err != nil {
		n.log.Debug("groups bucket leadership not handed across a cut; will retry", "node", to, "err", err)
		return true
	}
	n.log.Info("groups bucket leadership handed to a node that reaches the leader of a bucket this one is cut from",
		"node", to, "bucket", apart, "unanswered", cut)
	return true
}

// localLeader is the RAFT peer id of stream's leader as this node's replica
// sees it; empty when it holds no replica it has found, or sees no leader.
func (n *Node) localLeader(stream string) string {
	if n.epochs == nil {
		return ""
	}
	g, ok := n.epochs.cached(stream)
	if !ok {
		g, ok = n.epochs.local(stream)
	}
	if !ok {
		return ""
	}
	rn := lookupRaftNode(n.ns, g.name)
	if rn == nil {
		return ""
	}
	return rn.GroupLeader()
}

// followReadiness is what a look at a bucket led elsewhere found.
type followReadiness int

const (
	followNo     followReadiness = iota // no answer, no other leader, or no replica here
	followBehind                        // this node's replica is not current yet
	followReady                         // this node's replica is current: ask
)

// followReady tells whether stream has a leader other than this node and this
// node's replica is current, so that a step-down preferring it elects it.
func (n *Node) followReady(ctx context.Context, stream string) followReadiness {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := n.js.Stream(rctx, stream)
	if err != nil {
		return followNo
	}
	ci := s.CachedInfo().Cluster
	if ci == nil || ci.Leader == "" || ci.Leader == n.cfg.Name {
		return followNo
	}
	for _, r := range ci.Replicas {
		if r != nil && r.Name == n.cfg.Name {
			if r.Current && !r.Offline {
				return followReady
			}
			return followBehind
		}
	}
	return followNo
}
