package server

import (
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// RaftNode exposes lookupRaftNode to the tests: the node's RAFT node of group,
// or nil.
func (n *Node) RaftNode(group string) natsserver.RaftNode {
	return lookupRaftNode(n.ns, group)
}

// PreVoteHoldAsIfCut runs the pre-vote's hold (electionWatch.preVoteHold) on
// group, a follower on this node, with probes that say what a cut between this
// node and the group's leader's node alone would: the leader's node has
// answered none of this node's probes for silentAfter, the group's other peers
// answered just now and heard the leader's node just now, and this node runs
// on time. The group's own RAFT is what it is. It reports whether the hold put
// the group into observer mode (the caller takes it out).
func (n *Node) PreVoteHoldAsIfCut(group string) bool {
	rn := lookupRaftNode(n.ns, group)
	if rn == nil {
		return false
	}
	now := time.Now()
	leader := rn.GroupLeader()
	probes := probeView{heard: map[string]time.Time{leader: now.Add(-silentAfter)}, reports: map[string]peerReport{}, onTime: true, running: true}
	for _, p := range rn.Peers() {
		if p.ID != leader && p.ID != rn.ID() {
			probes.heard[p.ID] = now
			probes.reports[p.ID] = peerReport{at: now, heard: map[string]time.Time{leader: now}}
		}
	}
	w := newElectionWatch(n.ns, nil)
	return w.preVoteHold(now, group, rn, w.routed(), probes, time.Time{})
}

// RaftUnheardFrom reports raftUnheardFrom for the node named node: whether
// every RAFT group in which this node and that one talk directly has heard
// nothing from it for raftUnheardFor.
func (n *Node) RaftUnheardFrom(node string) bool {
	return raftUnheardFrom(n.ns, raftPeerID(node), time.Now())
}
