package server

import (
	"crypto/sha256"
	"time"
	_ "unsafe" // go:linkname, for lookupRaftNode

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// A node cut off from its cluster keeps its RAFT groups — the meta group, every
// partition's and bucket's stream, every replicated consumer — from campaigning
// while it is cut off, and lets them campaign again once the cut heals.
//
// Why: cut off, a follower's election timer fires (4–9 s after its leader's last
// heartbeat) and it campaigns, and every campaign raises its term; nobody answers,
// so it campaigns again, and again. Once the cut heals it answers its leader's next
// heartbeat with that higher term, and nats-server v2.15.2 makes a leader that
// sees a higher term in an answer step down (raft.go, processAppendEntryResponse)
// and wait a whole election timeout (4–9 s) before anyone campaigns: every group
// the healthy nodes led — the partitions the cut never touched, the meta group —
// stalls for seconds after the heal, long after the cut was over for them.
//
// nats-server's observer mode (RaftNode.SetObserver) is what it uses itself for a
// node in lame duck mode: an observer follows its leader, stores and votes, but
// never campaigns, so its term does not move. The node puts its groups into
// observer mode when it counts itself cut off (2.5–3 s after the cut, nearly
// always before the first election timer fires: the earliest comes 4 s after the
// leader's last heartbeat, a second at most before the cut; a group whose timer
// fired sooner is one term ahead and makes its own leader step down at the
// heal), and takes them out when it counts itself back:
// by then its groups follow the leaders the majority has, at their terms, and no
// leader steps down. Unlike shutting JetStream down, this changes nothing for a
// node whose peers have stopped: its JetStream keeps answering (a bucket "has no
// leader"), and it still votes for a peer that comes back.
//
// The node counts itself back once a majority of the nodes has answered it for
// isolatedAfter, but those answers come from the nodes' qxd services, and a node
// starts its services only once the meta group has a leader. So when the node's
// peers stopped and start again, the hold also ends once routes to a majority of
// the cluster have connected since it began (rejoined): otherwise a peer whose
// log is behind this node's could never be elected, and this node, the one that
// could, would wait for the peer's services.
//
// A group that has no leader when the node comes back (a whole-cluster cut: every
// leader stepped down for its lost quorum, and every node held its groups back)
// campaigns at once (RaftNode.Campaign: within 0.1–0.8 s) instead of after a whole
// election timeout, so such a cluster is not slower to elect than one whose
// nodes campaigned all along. A group that was already an observer (a write error,
// lame duck) is left as it was. (SetObserver also resets the meta group's
// leaf node domain extension state, which matters only to a JetStream extended
// over leaf nodes; a qxd node makes no leaf node connections.)
//
// nats-server exports no way to reach a server's RAFT groups, only their state
// (Server.Raftz), so lookupRaftNode links to its own lookup, as of the
// nats-server version in go.mod: a rename fails the build at link time, but a
// changed signature would not, so check it when nats-server is upgraded
// (TestCutOffNodeHoldsRaftGroups checks the effect).

// lookupRaftNode is nats-server's (*Server).lookupRaftNode: the RAFT node of
// group on s, or nil.
//
//go:linkname lookupRaftNode github.com/nats-io/nats-server/v2/server.(*Server).lookupRaftNode
func lookupRaftNode(s *natsserver.Server, group string) natsserver.RaftNode

// raftHold is the set of RAFT groups a cut-off node holds back from campaigning.
// The isolation watch owns it; it is not safe for concurrent use.
type raftHold struct {
	ns    *natsserver.Server
	held  map[string]bool // group → put into observer mode by the hold
	since time.Time       // when the node began holding, until it counts itself back
}

func newRaftHold(ns *natsserver.Server) *raftHold {
	return &raftHold{ns: ns, held: map[string]bool{}}
}

// raftGroups returns the names of the RAFT groups on the server, in every account,
// with whether each is an observer.
func (h *raftHold) raftGroups() map[string]bool {
	groups := map[string]bool{}
	az, err := h.ns.Accountz(&natsserver.AccountzOptions{})
	if err != nil {
		return groups
	}
	for _, acc := range az.Accounts {
		rz := h.ns.Raftz(&natsserver.RaftzOptions{AccountFilter: acc})
		if rz == nil {
			continue
		}
		for _, gs := range *rz {
			for name, g := range gs {
				groups[name] = g.Observer
			}
		}
	}
	return groups
}

// hold puts every group of the server that is not an observer yet, and whose
// peers this node cannot reach a majority of, into observer mode, and returns how
// many it put. reachable names the nodes that answered the node's probes lately. A
// group with a reachable majority is left to campaign: cut off from most of a
// five-node cluster, a node and its one reachable peer still make a quorum of a
// three-replica partition whose third replica is gone, and they must be able to
// elect its leader. It is called at every check while the node is cut off, so a
// group that starts meanwhile is held too.
func (h *raftHold) hold(reachable []string) int {
	if h.since.IsZero() {
		h.since = time.Now()
	}
	reach := map[string]bool{h.ns.Node(): true}
	for _, name := range reachable {
		reach[raftPeerID(name)] = true
	}
	put := 0
	for name, observer := range h.raftGroups() {
		if observer || h.held[name] || name == metaGroup {
			continue
		}
		rn := lookupRaftNode(h.ns, name)
		if rn == nil {
			continue
		}
		if peers := rn.Peers(); len(peers) > 0 {
			n := 0
			for _, p := range peers {
				if reach[p.ID] {
					n++
				}
			}
			if n >= len(peers)/2+1 {
				continue
			}
		}
		rn.SetObserver(true)
		h.held[name] = true
		put++
	}
	return put
}

// release takes every group the hold put into observer mode out of it; one with
// no leader campaigns at once. It returns how many groups it released and how many
// of them campaigned.
func (h *raftHold) release() (released, campaigned int) {
	for name := range h.held {
		delete(h.held, name)
		rn := lookupRaftNode(h.ns, name)
		if rn == nil {
			continue
		}
		rn.SetObserver(false)
		released++
		if rn.GroupLeader() == "" && rn.Campaign() == nil {
			campaigned++
		}
	}
	return released, campaigned
}

// metaGroup is JetStream's meta group, which the hold leaves alone. Held, it
// would go on naming its lost leader instead of having none, and JetStream
// would forward API requests to that leader and leave them unanswered instead
// of refusing them at once (10008, "temporarily unavailable"), the answer that
// lets a starting writer load from its stream without the meta group
// (TestWriterLoadsWithoutMetaLeader). The price: after a heal, the meta leader
// steps down for the returning node's higher term, and topic admin waits for
// the meta group's election (which that leader calls early, raft_campaign.go);
// partitions and buckets do not.
const metaGroup = "_meta_"

// raftPeerID is the RAFT peer id nats-server gives the server named name: the
// first 8 characters of its SHA-256 in base 62 (nats-server's getHash, which it
// does not export; Server.Node returns it for the server itself, and
// TestRaftPeerIDMatchesServer checks the two agree).
func raftPeerID(name string) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := sha256.Sum256([]byte(name))
	out := make([]byte, 8)
	for i := range out {
		out[i] = digits[int(b[i]%62)]
	}
	return string(out)
}

// holding reports whether the hold has groups in observer mode.
func (h *raftHold) holding() bool { return len(h.held) > 0 }

// rejoined reports whether routes to a majority of a cluster of size nodes (this
// one included) have connected since the hold began: peers that were gone are
// back, whether or not their qxd services answer yet.
func (h *raftHold) rejoined(size int) bool {
	if h.since.IsZero() {
		return false
	}
	rz, err := h.ns.Routez(&natsserver.RoutezOptions{})
	if err != nil {
		return false
	}
	fresh := map[string]bool{}
	for _, r := range rz.Routes {
		if r.RemoteName != "" && r.Start.After(h.since) {
			fresh[r.RemoteName] = true
		}
	}
	return len(fresh)+1 >= size/2+1
}

// done forgets when the hold began: the node counts itself back.
func (h *raftHold) done() { h.since = time.Time{} }
