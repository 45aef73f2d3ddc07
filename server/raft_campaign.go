package server

import (
	"context"
	"hash/fnv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// A RAFT group whose leader is gone waits, in nats-server v2.15.2, for a
// follower's election timer: 4–9 s after the leader's last heartbeat, fixed in
// nats-server, with no pre-vote. Two cases leave a group so for seconds although
// the node could tell at once that nobody leads:
//
//   - The leader's node died (SIGKILL, a crash): its routes close within
//     milliseconds, yet its followers wait out their timers.
//   - A leader stepped down because a peer answered its heartbeat with a higher
//     term (a node that woke from a pause, or came back from a cut: its timers
//     fired meanwhile, raising its terms; raft.go, processAppendEntryResponse).
//     The leader then has no leader and waits a whole election timeout, and its
//     followers wait theirs; only a step-down on a vote request makes an
//     up-to-date follower campaign early.
//
// So every node watches the RAFT groups it holds — partitions', buckets' and
// consumers' streams and JetStream's meta group — every electionCheckEvery, and
// makes a group campaign (RaftNode.Campaign: after a random 0.1–0.8 s, the delay
// nats-server gives a follower that refused a vote for a staler log) when
//
//	(a) it has had no leader for electionSettle, or
//	(b) its leader's node has had no route from this node for electionSettle (and
//	    electionStagger more for each voter ranked before this node, see
//	    campaignRank) and has not been heard from for electionSettle,
//
// and this node is a fit candidate: a voter of the group (in its peer set, not an
// observer, not a candidate already within electionRetryAfter of its last
// campaign), up to date (seen current under a live leader within
// electionRecentFor, and for (a) current now), reaching a quorum of the group's
// peers over routes, not cut off from its cluster (isolation.go) and not
// stopping (the upkeep, which owns the watch, stops first). A group is made to
// campaign again only after electionRetryAfter.
//
// Why it is safe: RAFT's safety does not depend on who campaigns or when. A
// candidate wins only with the votes of a majority, each granted once per term
// and only to a candidate whose log is at least as up to date as the voter's, so
// an early campaign can elect no leader that a late one could not. The risk is
// disruption: nats-server's RAFT has no leader lease, so a vote request with a
// higher term makes a live leader step down. The conditions keep that away from
// a group with a live leader: (a) needs the group to have no leader on this node
// for a while, which a follower of a live leader never sees, and (b) needs its
// leader's node unreachable from this node, which while it lives is a cut
// between the two (and then this node's own election timer calls the same
// election 4–9 s later: it hears no heartbeat). A node
// that woke from a pause is the case to fear: its groups are behind and its
// terms ahead. It does not campaign early: it counts itself cut off for seconds
// after it wakes (nobody answered its probes meanwhile), and a check that comes
// electionGap after the one before (a pause) forgets what the
// watch knew, so no group counts as seen current until it follows a leader
// again. The followers of a dead leader campaign one after the other
// (campaignRank), so that one asks for votes first and the others grant it (a
// follower that sees a higher term forgets its leader and resets its timer); a
// follower whose log is longer refuses and campaigns itself (nats-server's
// rule).
const (
	electionCheckEvery = 200 * time.Millisecond
	// electionSettle is how long a group must be seen without a leader, or its
	// leader's node without a route, before the node makes it campaign: an
	// election in progress ends in milliseconds, and a route that is replaced
	// comes back as quickly.
	electionSettle = 300 * time.Millisecond
	// electionStagger is how much longer than the one before it each follower of
	// a dead leader waits before it campaigns (campaignRank): longer than
	// Campaign's random delay spreads (0.7 s).
	electionStagger = time.Second
	// electionRecentFor is how recently the node must have seen the group current
	// under a live leader (itself or another) to count as up to date.
	electionRecentFor = 3 * time.Second
	// electionRetryAfter is how long after making a group campaign the node makes
	// it campaign again, if it still has no leader (a split vote).
	electionRetryAfter = 2 * time.Second
	// electionGap is how long between two checks makes the watch forget what it
	// knew: the node was paused, and its groups may be behind and their terms
	// ahead. A shorter pause or a starved process (checks late under load)
	// leaves the terms alone: no election timer fires within 4 s.
	electionGap = 3 * time.Second
	// electionListEvery is how often the watch lists the node's RAFT groups. A
	// group whose leader it has not seen yet (one that lost its leader within
	// about a second of its start) waits for JetStream's own election.
	electionListEvery = time.Second
)

// electionWatch decides which RAFT groups of a node campaign early. The election
// watch loop owns it; it is not safe for concurrent use.
type electionWatch struct {
	ns     *natsserver.Server
	names  []string
	listed time.Time
	last   time.Time // the previous check
	groups map[string]*groupElection
}

// groupElection is what the watch knows of one group.
type groupElection struct {
	current    time.Time // last seen current under a live leader
	leaderless time.Time // since when without a leader; zero while it has one
	gone       time.Time // since when its leader's node has no route; zero while it has
	campaigned time.Time // when the watch last made it campaign
}

// earlyCampaign is a group the watch made campaign, and why.
type earlyCampaign struct {
	group  string
	leader string // the gone leader's peer id, for a leader whose node is gone
}

func newElectionWatch(ns *natsserver.Server) *electionWatch {
	return &electionWatch{ns: ns, groups: map[string]*groupElection{}}
}

// check looks at every RAFT group of the node at now and makes those campaign
// that have no live leader, as described above. cutOff says whether the node
// counts itself cut off from its cluster.
func (w *electionWatch) check(now time.Time, cutOff bool) []earlyCampaign {
	gap := !w.last.IsZero() && now.Sub(w.last) > electionGap
	w.last = now
	if gap || cutOff {
		clear(w.groups)
		return nil
	}
	if w.listed.IsZero() || now.Sub(w.listed) >= electionListEvery {
		w.names = w.names[:0]
		for name := range newRaftHold(w.ns).raftGroups() {
			w.names = append(w.names, name)
		}
		w.listed = now
		for name := range w.groups {
			if lookupRaftNode(w.ns, name) == nil {
				delete(w.groups, name)
			}
		}
	}
	routed := w.routed()
	var out []earlyCampaign
	for _, name := range w.names {
		rn := lookupRaftNode(w.ns, name)
		if rn == nil {
			continue
		}
		g := w.groups[name]
		if g == nil {
			g = &groupElection{}
			w.groups[name] = g
		}
		if c, ok := g.observe(now, name, rn, routed); ok {
			out = append(out, c)
		}
	}
	return out
}

// routed returns the RAFT peer ids of the servers this node has a route to.
func (w *electionWatch) routed() map[string]bool {
	out := map[string]bool{}
	rz, err := w.ns.Routez(&natsserver.RoutezOptions{})
	if err != nil {
		return out
	}
	for _, r := range rz.Routes {
		if r.RemoteName != "" {
			out[raftPeerID(r.RemoteName)] = true
		}
	}
	return out
}

// observe updates what the watch knows of group name from its RAFT node rn at
// now, makes it campaign when it has no live leader and this node is a fit
// candidate, and reports whether it did.
func (g *groupElection) observe(now time.Time, name string, rn natsserver.RaftNode, routed map[string]bool) (earlyCampaign, bool) {
	state := rn.State()
	if state == natsserver.Closed || rn.IsObserver() {
		*g = groupElection{}
		return earlyCampaign{}, false
	}
	self := rn.ID()
	peers := rn.Peers()
	voter, reached := false, 0
	var leaderSeen time.Time
	leader := rn.GroupLeader()
	for _, p := range peers {
		if p.ID == self {
			voter = true
		}
		if p.ID == self || routed[p.ID] {
			reached++
		}
		if p.ID == leader {
			leaderSeen = p.Last
		}
	}
	current := rn.Current()
	if leader != "" && current {
		g.current = now
	}
	switch {
	case leader == "":
		if g.leaderless.IsZero() {
			g.leaderless = now
		}
		g.gone = time.Time{}
	case leader != self && !routed[leader]:
		g.leaderless = time.Time{}
		if g.gone.IsZero() {
			g.gone = now
		}
	default:
		g.leaderless, g.gone = time.Time{}, time.Time{}
		return earlyCampaign{}, false
	}
	fit := voter && state != natsserver.Leader &&
		!g.current.IsZero() && now.Sub(g.current) <= electionRecentFor &&
		reached >= len(peers)/2+1 &&
		(g.campaigned.IsZero() || now.Sub(g.campaigned) >= electionRetryAfter)
	if !fit {
		return earlyCampaign{}, false
	}
	var c earlyCampaign
	switch {
	case !g.leaderless.IsZero():
		// A candidate is campaigning already: only one whose election has gone
		// on past a vote's round trip (a split vote) is made to try again.
		settle := electionSettle
		if state == natsserver.Candidate {
			settle = electionRetryAfter
		}
		if !current || now.Sub(g.leaderless) < settle {
			return earlyCampaign{}, false
		}
		c = earlyCampaign{group: name}
	default:
		wait := electionSettle + time.Duration(campaignRank(name, self, leader, peers, routed))*electionStagger
		if now.Sub(g.gone) < wait || now.Sub(leaderSeen) < electionSettle {
			return earlyCampaign{}, false
		}
		c = earlyCampaign{group: name, leader: leader}
	}
	if rn.Campaign() != nil {
		return earlyCampaign{}, false
	}
	g.campaigned = now
	return c, true
}

// campaignRank is this node's place (0 first) among the group's voters that may
// follow a leader whose node is gone: the group's peers other than that leader
// that this node reaches, itself included, ordered by a hash of the group's name
// and the peer's id, so that the groups of a dead node prefer different nodes.
// They all see the dead node's routes close at once; each waits electionStagger
// longer than the one before it, more than Campaign's random delay spreads, so
// that one asks for votes first and the others grant it instead of splitting
// the vote (a split vote waits out a whole election timeout).
func campaignRank(group, self, leader string, peers []*natsserver.Peer, routed map[string]bool) int {
	rank := func(id string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(group))
		h.Write([]byte{0})
		h.Write([]byte(id))
		return h.Sum64()
	}
	mine, n := rank(self), 0
	for _, p := range peers {
		if p.ID == self || p.ID == leader || !routed[p.ID] {
			continue
		}
		if r := rank(p.ID); r < mine || r == mine && p.ID < self {
			n++
		}
	}
	return n
}

// watchElections makes the node's RAFT groups that have no live leader campaign
// early (see above), every electionCheckEvery until ctx ends. The upkeep owns it.
func (n *Node) watchElections(ctx context.Context) {
	w := newElectionWatch(n.ns)
	everyTick(ctx, electionCheckEvery, func() bool {
		for _, c := range w.check(time.Now(), n.isolated.Load()) {
			if c.leader != "" {
				n.log.Info("raft group campaigning early: its leader's node is gone", "raft", c.group, "leader", c.leader)
			} else {
				n.log.Info("raft group campaigning early: it has no leader", "raft", c.group)
			}
		}
		return true
	})
}
