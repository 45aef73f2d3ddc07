package server

import (
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// The pre-vote (raft_campaign.go) and the move of clients off a node cut from
// one peer (isolation.go) learn of a cut from the probes: a node that answers
// the others does not answer this one. Under load that happens without a cut:
// one node's answers to this one come late for seconds while another node
// still hears it. Both act only when the node's own RAFT agrees that the
// other node is silent too: RAFT traffic between two nodes runs on the same
// route as the probes but not behind the qxd services' queues, and a loaded
// node goes on sending it.
//
// raftUnheardFor is how long that RAFT silence must last: a leader hands its
// leadership (RaftNode.StepDown with a preferred peer, as graceful stops and
// leadership moves do) only to a peer it heard within three heartbeats (3 s,
// nats-server's withinLiveWindow), and a follower answers every append entry
// it gets. A follower that has not heard its leader for raftUnheardFor has not
// answered it either, so no leadership can be handed to it while the pre-vote
// holds its group in observer mode, where it would be refused. It is below
// the 4 s after which nats-server's own election timer may fire.
const raftUnheardFor = 3 * time.Second

// clientsMoveUnheardFor is how long the RAFT silence must last for the move of
// clients off a node cut from one peer (raftUnheardFrom): moving clients hands
// no leadership and holds no group, so it needs none of the pre-vote's margin
// over nats-server's hand-off window, only the RAFT's word that the probes'
// silence is a cut and not a loaded node.
const clientsMoveUnheardFor = 2 * time.Second

// leaderUnheard reports whether group rn, a follower, has not heard its
// leader's append entries for d up to now.
func leaderUnheard(rn natsserver.RaftNode, leader string, now time.Time, d time.Duration) bool {
	for _, p := range rn.Peers() {
		if p.ID == leader {
			return p.Last.IsZero() || now.Sub(p.Last) >= d
		}
	}
	return false
}

// raftUnheardFrom reports whether every RAFT group of ns in which this node
// and the node with RAFT peer id peer talk directly (one leads, the other
// follows) has heard nothing from that node for clientsMoveUnheardFor up to
// now, and there is at least one such group.
func raftUnheardFrom(ns *natsserver.Server, peer string, now time.Time) bool {
	direct := false
	for name := range newRaftHold(ns).raftGroups() {
		rn := lookupRaftNode(ns, name)
		if rn == nil {
			continue
		}
		var last time.Time
		switch {
		case rn.State() == natsserver.Leader:
			member := false
			for _, p := range rn.Peers() {
				member = member || p.ID == peer
			}
			if !member {
				continue
			}
			last = rn.LastHeardFromFollower(peer)
		case rn.GroupLeader() == peer:
			if !leaderUnheard(rn, peer, now, clientsMoveUnheardFor) {
				return false
			}
			direct = true
			continue
		default:
			continue
		}
		direct = true
		if !last.IsZero() && now.Sub(last) < clientsMoveUnheardFor {
			return false
		}
	}
	return direct
}
