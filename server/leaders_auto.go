package server

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// Automatic leader rebalancing, Kafka's auto.leader.rebalance.enable: a node that
// stops hands its partition leaderships to other replicas, and after it is back the
// other nodes would keep leading its share. Every LeaderImbalanceCheckInterval the
// meta leader looks at the replicated partitions' leaders; where one node leads more
// than its share (the partitions it holds replicas of, over the nodes, rounded up)
// and a node that leads less than its share holds a current replica, the leadership
// moves to it, as a topic's create and 'qxd topic rebalance' place leaders.
//
// To cause no churn: a node only takes leaderships once it was seen up and under its
// share at two checks in a row (a node stopping, which hands its leaderships off and
// leads nothing for a moment, is gone by the next check), only partitions whose
// replica on it is current (caught up) move, nothing moves while the leaders are
// spread, and nothing moves while this node stops (the upkeep stops first).

// rebalanceState is what the checks remember from one to the next.
type rebalanceState struct {
	last  time.Time
	under map[string]bool // nodes up and under their share at the last check
}

// autoRebalance runs one check when it is due. Only the meta leader checks.
func (n *Node) autoRebalance(ctx context.Context) {
	if !n.cfg.AutoLeaderRebalance || !n.ns.JetStreamIsLeader() {
		n.rebalance.under = nil
		return
	}
	if time.Since(n.rebalance.last) < n.cfg.LeaderImbalanceCheckInterval {
		return
	}
	n.rebalance.last = time.Now()
	cctx, cancel := context.WithTimeout(ctx, n.cfg.LeaderImbalanceCheckInterval)
	defer cancel()
	moved, err := n.rebalanceLeaders(cctx)
	if err != nil {
		n.log.Debug("leader imbalance check failed; next check later", "err", err)
		return
	}
	if moved > 0 {
		n.log.Info("partition leaders moved back to their spread", "partitions", moved)
	}
}

// leaderPart is a replicated partition's leader and replicas as its leader sees
// them.
type leaderPart struct {
	stream  string
	leader  string
	current []string // replicas up and caught up, the leader excluded
	holders []string // every replica, the leader included
}

// rebalanceLeaders moves leaderships from nodes over their share to current
// replicas on nodes under it that were under it at the last check too. It returns
// how many moved.
func (n *Node) rebalanceLeaders(ctx context.Context) (int, error) {
	parts, err := n.leaderParts(ctx)
	if err != nil || len(parts) == 0 {
		return 0, err
	}
	up := map[string]bool{}
	for _, name := range n.onlineNodes() {
		up[name] = true
	}
	leads, holds := map[string]int{}, map[string]int{}
	for _, p := range parts {
		leads[p.leader]++
		for _, h := range p.holders {
			holds[h]++
		}
	}
	// Each node's share: the partitions over the nodes that are up and hold
	// replicas, rounded up.
	nodes := 0
	for h := range holds {
		if up[h] {
			nodes++
		}
	}
	if nodes == 0 {
		return 0, nil
	}
	share := (len(parts) + nodes - 1) / nodes
	under := map[string]bool{}
	for h := range holds {
		if up[h] && leads[h] < share {
			under[h] = true
		}
	}
	prev := n.rebalance.under
	n.rebalance.under = under
	moved := 0
	slices.SortFunc(parts, func(a, b leaderPart) int { return cmp.Compare(a.stream, b.stream) })
	for _, p := range parts {
		if ctx.Err() != nil {
			break
		}
		if leads[p.leader] <= share {
			continue
		}
		var to string
		for _, c := range p.current {
			if under[c] && prev[c] && leads[c] < share && (to == "" || leads[c] < leads[to]) {
				to = c
			}
		}
		if to == "" {
			continue
		}
		if err := n.handOffVia(ctx, p.leader, p.stream, to); err != nil {
			n.log.Debug("leader not moved", "stream", p.stream, "err", err)
			continue
		}
		n.log.Debug("partition leader moved back", "stream", p.stream, "from", p.leader, "to", to)
		leads[p.leader]--
		leads[to]++
		moved++
	}
	return moved, nil
}

// leaderParts lists the replicated partitions of ready topics with a leader, from
// one stream list.
func (n *Node) leaderParts(ctx context.Context) ([]leaderPart, error) {
	want := map[string]bool{}
	if n.writers != nil {
		n.writers.mu.Lock()
		for _, t := range n.writers.topics {
			if t.State != semantics.TopicReady || t.Config.Replicas < 2 {
				continue
			}
			for p := int32(0); p < t.Config.Partitions; p++ {
				want[semantics.StreamName(t.Name, p)] = true
			}
		}
		n.writers.mu.Unlock()
	}
	if len(want) == 0 {
		return nil, nil
	}
	l := n.js.ListStreams(ctx, jetstream.WithStreamListSubject(semantics.PartitionSubjects))
	var out []leaderPart
	for si := range l.Info() {
		if !want[si.Config.Name] || si.Cluster == nil || si.Cluster.Leader == "" {
			continue
		}
		p := leaderPart{stream: si.Config.Name, leader: si.Cluster.Leader, holders: []string{si.Cluster.Leader}}
		for _, r := range si.Cluster.Replicas {
			if r == nil || r.Name == "" || r.Name == p.leader {
				continue
			}
			p.holders = append(p.holders, r.Name)
			if r.Current && !r.Offline {
				p.current = append(p.current, r.Name)
			}
		}
		out = append(out, p)
	}
	return out, l.Err()
}
