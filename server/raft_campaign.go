package server

import (
	"context"
	"hash/fnv"
	"reflect"
	"sync"
	"time"
	"unsafe"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// A RAFT group whose leader is gone waits, in nats-server v2.15.2, for a
// follower's election timer: 4–9 s after the leader's last heartbeat, fixed in
// nats-server, with no pre-vote. Three cases leave a group so for seconds
// although the node could tell sooner that nobody leads:
//
//   - The leader's node died (SIGKILL, a crash): its routes close within
//     milliseconds, yet its followers wait out their timers.
//   - The leader's node is paused (SIGSTOP, a VM freeze) or cut off by the
//     network: its routes stay up until nats-server's route pings give up on
//     them (every 2 s, three outstanding: 6–8 s), and the followers' timers
//     fire 4–9 s after its last heartbeat; but it answers none of this node's
//     probes (isolation.go, every probeEvery) from the moment it stops.
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
// nats-server gives a follower that refused a vote for a staler log; for (b)
// and (c) after rankedCampaignDelay, see below) when
//
//	(a) it has had no leader for electionSettle (formerLeaderSettle when this
//	    node led it within electionRecentFor: see below), or
//	(b) its leader's node has had no route from this node for electionSettle (and
//	    electionStagger more for each voter ranked before this node, see
//	    campaignRank) and has not been heard from for electionSettle, or
//	(c) its leader's node is silent though its routes are up: it answered this
//	    node's probes once but none for silentAfter (and electionStagger more
//	    for each voter ranked before this node), and the group heard nothing
//	    from its leader over RAFT for silentAfter either, while this node's own
//	    probes went out on time for all that while (probeView.onTime) and a
//	    quorum of the group's peers, this node and peers that answered its
//	    probes within answeredWithin, not counting the leader, stands ready to
//	    elect,
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
// election 4–9 s later: it hears no heartbeat).
//
// (c) is the one that can depose a live leader: a leader's node starved of CPU
// (CI machines run at load averages of 20 and more) answers late. So it needs
// two channels silent at once — the leader's qxd services (the probes' answers,
// four of them missed) and its RAFT (heartbeats at least every 1–2 s, far more
// often while the group takes writes) — and this node itself demonstrably on
// time: its probes went out every probeEvery for the whole silence (a node that
// was paused or starved itself sent none, so heard none), and a quorum of the
// group's peers answered it within answeredWithin, half the leader's silence.
// A leader silent on both for silentAfter is one that nats-server itself counts
// as not current (a follower that has not heard its leader for two heartbeat
// intervals, raft.go isCurrent); a leader that is alive but that slow would
// be deposed by the followers' own election timers from 4 s on. The cost of a
// wrong call is one leader change (its writer's appends in flight fail and are
// resent), never a lost or reordered record: see above.
//
// A leader that stepped down for a woken node's higher term is its group's
// best candidate: no follower's log is longer than its own, and it is current.
// Its node therefore looks every ledCheckEvery at the groups it led lately,
// and makes one that has lost its leader campaign after formerLeaderSettle,
// with formerLeaderDelay rather than Campaign's random 0.1–0.8 s
// (campaignAfter): its group has a leader again about 0.1–0.2 s after the
// step-down, where the followers' watch, 0.3 s and a random delay on, would
// take 0.4–1.3 s. It asks for votes before the healthy followers' own timers
// fire (a woken node's vote request sets them to 0.1–0.8 s, raft.go
// processVoteRequest; its followers' watch keeps electionSettle), so that they
// grant them, as does the woken node, whose log is behind, instead of
// splitting the vote, which only the slow woken node could then decide.
// Its stream has it as leader once its first entry is committed, which
// raft_confirm.go sees to when its followers are both caught up through
// catch-up streams.
// A hand-off this node asked for (handOff: leader balancing, moves) elects its
// successor within milliseconds, but the watch leaves the groups it led alone
// for handOffElects after it; one that JetStream is asked for directly and
// that takes longer than formerLeaderSettle may see the former leader take the
// group back, which costs a leader change, never a record. A stopping node's
// watch has stopped before it hands its leaderships off. A node that woke from
// a pause counts no group as led by it for electionRecentFor after it woke:
// a group it led before the pause still names it leader, at a stale term,
// until it hears its successor, and then steps down with a log that is behind.
//
// A node that woke from a pause is the case to fear: its groups are behind and
// its terms ahead. It does not campaign early: it makes no group campaign for
// electionRecentFor after a check that comes electionGap after the one before
// (a pause; a group it follows may lose its leader again meanwhile, to another
// of its groups' higher terms, and a campaign of its own would raise one
// more), and that check forgets what the watch knew, so no group counts as
// seen current until it follows a leader again;
// for (c) its probes count as on time only silentAfter after it woke, by when
// every live node has answered them. A leader it woke as has stepped down on
// the new leader's higher term by then. The followers of a dead or silent
// leader campaign one after the other (campaignRank), so that one asks for
// votes first and the others grant it (a follower that sees a higher term
// forgets its leader and resets its timer); a follower whose log is longer
// refuses and campaigns itself (nats-server's rule). Two followers that both
// ask for votes at one term vote for themselves and split the vote, which
// waits out an election timeout (4–9 s). So each asks rankedCampaignDelay
// after its turn, not after Campaign's random delay: a silent leader's
// followers count its silence from the last answers to their own probes (up
// to probeEvery apart) and check every electionCheckEvery, and with the
// random delay on top the first one's vote request could go out after the
// second one's turn had come. And a follower that saw the group's term rise on
// a peer's vote request stands down for standDownFor (peerCampaigning), until
// the group has a leader, rather than call an election at that candidate's
// term or above it; a former leader does not (it is the best candidate).
//
// The pre-vote: a cut between this node and the leader's node alone, both
// reaching the other nodes, meets (b) or (c) here, and a campaign would win
// the third node's vote and depose a leader that still has its quorum; and it
// would run both ways, each side deposing the other's leaders. So no case
// makes a group campaign while a peer of the group that answered this node
// lately says it heard the leader's node after this node last did
// (probeView.heardElsewhere, from semantics.BrokerInfo.Reaches), and while that
// holds and this node does not hear the leader's node, preVoteHold puts the
// group into observer mode, which keeps nats-server's own timer from
// campaigning too (as raftHold does for a node cut off from most).
const (
	electionCheckEvery = 200 * time.Millisecond
	// ledCheckEvery is how often, between two checks, the watch looks at the
	// groups this node led lately: a leader that stepped down is
	// the group's best candidate (no follower's log is longer), and its group
	// waits for it.
	ledCheckEvery = 50 * time.Millisecond
	// formerLeaderSettle is how long a group this node led must be seen without
	// a leader before the node makes it campaign, with formerLeaderDelay rather
	// than Campaign's random 0.1–0.8 s: sooner than the healthy followers' own
	// timers, which a woken node's vote request sets to fire after 0.1–0.8 s
	// (raft.go, processVoteRequest), so that the former leader asks for votes
	// first and they grant them instead of splitting the vote with it. A
	// hand-off elects its successor within milliseconds.
	formerLeaderSettle = 50 * time.Millisecond
	// formerLeaderDelay is when the former leader asks for votes after the
	// watch makes it campaign.
	formerLeaderDelay = 20 * time.Millisecond
	// rankedCampaignDelay is when a follower of a gone or silent leader (cases
	// (b) and (c)) asks for votes after the watch makes it campaign, rather
	// than after Campaign's random 0.1–0.8 s: its turn (campaignRank) already
	// orders it among the group's followers, and a random delay as wide as
	// most of electionStagger let the first one's vote request go out after
	// the next one had called its own election (a split vote).
	rankedCampaignDelay = 20 * time.Millisecond
	// standDownFor is how long a follower without a leader leaves the group
	// to a peer whose vote request raised its term (campaigning): that
	// candidate wins within a round trip of the votes it asked for, and an
	// election this node called meanwhile would split the vote or depose it.
	standDownFor = electionStagger
	// electionSettle is how long a group must be seen without a leader, or its
	// leader's node without a route, before the node makes it campaign: an
	// election in progress ends in milliseconds, and a route that is replaced
	// comes back as quickly.
	electionSettle = 300 * time.Millisecond
	// electionStagger is how much longer than the one before it each follower of
	// a dead or silent leader waits before it campaigns (campaignRank): longer
	// than the followers' counts of a silent leader's silence spread (their
	// probes' answers, up to probeEvery apart, and their checks,
	// electionCheckEvery), with rankedCampaignDelay and a vote's round trip
	// to spare (TestSilentLeaderTurnsDoNotOverlap).
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
	// silentAfter is how long a leader's node must have answered none of the
	// node's probes, and its group heard nothing from it over RAFT, before the
	// node counts it silent (c): four probes unanswered, and twice RAFT's
	// heartbeat interval, past which nats-server counts a leader not current.
	// Shorter than isolatedAfter, the same silence from most nodes, because
	// it takes a quorum heard from lately too; long enough that a leader merely
	// slow under load is not deposed routinely (see above).
	silentAfter = 2 * time.Second
	// answeredWithin is how recently a peer must have answered the node's
	// probes to count towards the quorum that elects a silent leader's
	// successor (c): one probe late at most.
	answeredWithin = 2 * probeEvery
)

// electionWatch decides which RAFT groups of a node campaign early. The election
// watch loop owns it; it is not safe for concurrent use.
type electionWatch struct {
	ns     *natsserver.Server
	probes *isolationWatch // the isolation watch's probes; nil: no case (c)
	// handingOff returns until when a hand-off the node asked for may still be
	// electing its successor; nil: never.
	handingOff func() time.Time
	names      []string
	listed     time.Time
	last       time.Time // the previous check
	full       time.Time // the previous check of every group
	woke       time.Time // when a check came electionGap after the one before
	groups     map[string]*groupElection
	// confirming is the term at which each group last sent a heartbeat to
	// confirm its new leader (raft_confirm.go).
	confirming map[string]uint64
	// held are the groups the pre-vote put into observer mode, so that
	// nats-server's own election timer does not make them campaign either.
	held map[string]bool
	// routedBefore is the RAFT peer ids of the nodes routed at the previous
	// check: a route that closed asks for a probe at once (probeSoon).
	routedBefore map[string]bool
	// put and released count the groups the pre-vote held and let go since
	// the caller last read them (holds).
	put, released int
	// wake holds the node's groups from leading after it woke from a pause
	// (raft_wake.go).
	wake wakeHold
}

// groupElection is what the watch knows of one group.
type groupElection struct {
	current    time.Time // last seen current under a live leader
	led        time.Time // last seen led by this node
	leaderless time.Time // since when without a leader; zero while it has one
	gone       time.Time // since when its leader's node has no route; zero while it has
	campaigned time.Time // when the watch last made it campaign
	term       uint64    // the group's term at the last check
	// peerTerm is when the group's term last rose on a peer's vote request
	// (peerCampaigning): a follower's term rises only so or on a new
	// leader's append, after which it has a leader.
	peerTerm time.Time
}

// sawTerm records the group's term at now, with its state and leader then:
// a term that rose while the node was a follower without a leader rose on a
// peer's vote request (raft.go, processVoteRequest, which also forgets the
// leader): a peer campaigns. The node's own campaign makes it a candidate
// first, and a new leader's append names the leader.
func (g *groupElection) sawTerm(now time.Time, term uint64, state natsserver.RaftState, leader string) {
	if g.term != 0 && term > g.term && state == natsserver.Follower && leader == "" {
		g.peerTerm = now
	}
	if leader != "" {
		g.peerTerm = time.Time{}
	}
	g.term = term
}

// peerCampaigning reports whether, at now, a peer's vote request raised the
// group's term within standDownFor: this node leaves the election to it,
// whatever it saw before (a silent or gone leader's turn, a group without a
// leader), rather than call one of its own at the same term.
func (g *groupElection) peerCampaigning(now time.Time) bool {
	return !g.peerTerm.IsZero() && now.Sub(g.peerTerm) < standDownFor
}

// earlyCampaign is a group the watch made campaign, and why.
type earlyCampaign struct {
	group  string
	leader string // the leader's peer id, for a leader whose node is gone or silent
	silent bool   // the leader's node is silent, though routed (c)
	former bool   // this node led the group until it lost its leader
}

// probeView is what the isolation watch's probes say at one check of the
// election watch (isolationWatch.probed).
type probeView struct {
	heard  map[string]time.Time // RAFT peer id → when that node last answered
	onTime bool                 // the probes went out on time for silentAfter
	// running: the node's ticker ran on time for silentAfter
	// (isolationWatch.runningLocked): it is neither paused nor starved.
	running bool
	cutOff  bool // the node counts itself cut off
	// reports is what each node's last answer said of the nodes it reaches,
	// all by RAFT peer id.
	reports map[string]peerReport
}

// heardElsewhere is the pre-vote (see above): it reports whether, at now, a
// peer of the group other than this node (self) and leader answered this
// node's probes within answeredWithin, after since (zero: any time), saying
// that it has a route to leader's node and heard that node answer its own
// probes after this node last did and within preVoteHeard. Leader's node then
// runs and reaches that peer, and together they make the group's quorum
// where this node cannot: only the way between this node and the leader's is
// cut, and a campaign here would depose a live leader through that peer's
// vote.
func (v probeView) heardElsewhere(now time.Time, self, leader string, peers []*natsserver.Peer, since time.Time) bool {
	mine := v.heard[leader]
	for _, p := range peers {
		if p.ID == self || p.ID == leader {
			continue
		}
		r, ok := v.reports[p.ID]
		if !ok || now.Sub(r.at) >= answeredWithin || !r.at.After(since) {
			continue
		}
		if h, ok := r.heard[leader]; ok && h.After(mine) && now.Sub(h) < preVoteHeard {
			return true
		}
	}
	return false
}

// silentLeader reports whether, at now, a group may be made to campaign because
// its leader's node is silent (case (c) above): peer leader answered the probes
// once but not for silentAfter plus electionStagger per voter ranked before
// this node, the group heard nothing from it over RAFT since raftLast for
// silentAfter, this node's probes went out on time, it is not cut off, and it
// and the peers that answered within answeredWithin make a quorum of peers.
// self is this node's peer id; the other fitness checks are observe's.
func (v probeView) silentLeader(now time.Time, group, self, leader string, peers []*natsserver.Peer, raftLast time.Time) bool {
	heard, ok := v.heard[leader]
	if !v.onTime || v.cutOff || !ok || now.Sub(raftLast) < silentAfter || now.Sub(heard) < silentAfter {
		return false
	}
	answering := map[string]bool{}
	ready := 0
	for _, p := range peers {
		switch {
		case p.ID == leader:
		case p.ID == self:
			ready++
		default:
			if t, ok := v.heard[p.ID]; ok && now.Sub(t) < answeredWithin {
				answering[p.ID] = true
				ready++
			}
		}
	}
	if ready < len(peers)/2+1 {
		return false
	}
	wait := silentAfter + time.Duration(campaignRank(group, self, leader, peers, answering))*electionStagger
	return now.Sub(heard) >= wait
}

func newElectionWatch(ns *natsserver.Server, probes *isolationWatch) *electionWatch {
	return &electionWatch{ns: ns, probes: probes, groups: map[string]*groupElection{}, confirming: map[string]uint64{}, held: map[string]bool{}}
}

// check looks at every RAFT group of the node at now and makes those campaign
// that have no live leader, as described above: every electionCheckEvery, and
// between those, every ledCheckEvery, while a group this node led lately has
// lost its leader and has not been made to campaign since. cutOff says whether
// the node counts itself cut off from its cluster.
func (w *electionWatch) check(now time.Time, cutOff bool) []earlyCampaign {
	gap := !w.last.IsZero() && now.Sub(w.last) > electionGap
	w.last = now
	if gap {
		w.woke = now
	}
	if gap || cutOff {
		// A node cut off holds all its groups (raftHold); one that woke
		// from a pause knows nothing of its peers yet, and holds its groups
		// from leading for a while (raft_wake.go).
		w.releaseAll()
		if gap && !cutOff {
			slept := map[string]uint64{}
			for name, g := range w.groups {
				slept[name] = g.term
			}
			w.wake.holdAll(w.ns, now, slept)
		}
		clear(w.groups)
		w.full = time.Time{}
		return nil
	}
	if w.wake.holding() {
		w.wake.tend(w.ns, now)
	}
	if !w.full.IsZero() && now.Sub(w.full) < electionCheckEvery && !w.formerLed(now) {
		return nil
	}
	w.full = now
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
		for name := range w.confirming {
			if lookupRaftNode(w.ns, name) == nil {
				delete(w.confirming, name)
			}
		}
		for name := range w.held {
			if lookupRaftNode(w.ns, name) == nil {
				delete(w.held, name)
			}
		}
	}
	routed := w.routed()
	for id := range w.routedBefore {
		if !routed[id] && w.probes != nil {
			w.probes.probeSoon()
			break
		}
	}
	w.routedBefore = routed
	handingOff := w.handingOff != nil && now.Before(w.handingOff())
	var probes probeView
	if w.probes != nil {
		probes = w.probes.probed(now)
	}
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
		// The hold is decided first: a group it lets go may campaign at
		// once, and one it holds keeps what the watch knows of it.
		held := w.preVoteHold(now, name, rn, routed, probes, g.gone)
		if c, ok := g.observe(now, name, rn, routed, probes, w.woke, handingOff, held); ok {
			out = append(out, c)
		}
	}
	return out
}

// preVoteHold puts group name into observer mode while the pre-vote keeps it
// from campaigning (heardElsewhere): it follows a leader on another node that
// this node has no route to, or has not heard answer its probes for
// doubtAfter, and that another peer of the group reaches; the group's own
// RAFT has not heard that leader for raftUnheardFor (so no leadership can be
// handed to it meanwhile, raft_prevote.go); and the node runs on time
// (probeView.running: a starved node hears nothing on time). nats-server's
// own election timer fires 4–9 s after the leader's last heartbeat, and an
// observer does not campaign; it still votes and follows. It takes the group
// out of observer mode as soon as that is no longer so: it has no leader, or
// its leader's node answers this one again or its RAFT hears the leader, or
// no peer reaches it, or the node runs late. A group in
// observer mode for another reason (raftHold, a write error) is left alone.
// gone is since when the group's leader's node has had no route from this
// node (groupElection.gone; zero: it had one at the last check): as for case
// (b), only answers that came after the route closed count. It reports
// whether the pre-vote holds the group now.
func (w *electionWatch) preVoteHold(now time.Time, name string, rn natsserver.RaftNode, routed map[string]bool, probes probeView, gone time.Time) bool {
	self, leader := rn.ID(), rn.GroupLeader()
	since := time.Time{}
	if !routed[leader] {
		since = gone
		if since.IsZero() {
			since = now // the route closed since the last check
		}
	}
	hold := rn.State() == natsserver.Follower && leader != "" && leader != self && !probes.cutOff && probes.running &&
		(!routed[leader] || now.Sub(probes.heard[leader]) >= doubtAfter) &&
		probes.heardElsewhere(now, self, leader, rn.Peers(), since) &&
		leaderUnheard(rn, leader, now, raftUnheardFor)
	switch {
	case hold && !w.held[name] && !rn.IsObserver():
		rn.SetObserver(true)
		w.held[name] = true
		w.put++
	case !hold && w.held[name]:
		delete(w.held, name)
		rn.SetObserver(false)
		w.released++
	}
	return w.held[name]
}

// releaseAll takes every group the pre-vote holds out of observer mode.
func (w *electionWatch) releaseAll() {
	for name := range w.held {
		delete(w.held, name)
		if rn := lookupRaftNode(w.ns, name); rn != nil {
			rn.SetObserver(false)
			w.released++
		}
	}
}

// holds returns how many groups the pre-vote held and let go since the last
// call.
func (w *electionWatch) holds() (put, released int) {
	put, released = w.put, w.released
	w.put, w.released = 0, 0
	return put, released
}

// formerLed reports whether a group this node led lately (within
// electionRecentFor), and has not made campaign since it led it, has no
// leader now.
func (w *electionWatch) formerLed(now time.Time) bool {
	for name, g := range w.groups {
		if g.led.IsZero() || now.Sub(g.led) > electionRecentFor || g.campaigned.After(g.led) {
			continue
		}
		if rn := lookupRaftNode(w.ns, name); rn != nil && rn.State() != natsserver.Leader && rn.GroupLeader() == "" {
			return true
		}
	}
	return false
}

// routed returns the RAFT peer ids of the servers this node has a route to.
func (w *electionWatch) routed() map[string]bool {
	out := map[string]bool{}
	for name := range routedServers(w.ns) {
		out[raftPeerID(name)] = true
	}
	return out
}

// routedServers returns the names of the servers ns has a route to.
func routedServers(ns *natsserver.Server) map[string]bool {
	out := map[string]bool{}
	rz, err := ns.Routez(&natsserver.RoutezOptions{})
	if err != nil {
		return out
	}
	for _, r := range rz.Routes {
		if r.RemoteName != "" {
			out[r.RemoteName] = true
		}
	}
	return out
}

// observe updates what the watch knows of group name from its RAFT node rn at
// now, makes it campaign when it has no live leader and this node is a fit
// candidate, and reports whether it did. woke is when the node last woke from a
// pause (zero: never); handingOff, whether a hand-off the node asked for may
// still be electing its successor; held, whether the pre-vote holds the group
// in observer mode (preVoteHold): it is watched as any other group, and the
// pre-vote keeps it from campaigning.
func (g *groupElection) observe(now time.Time, name string, rn natsserver.RaftNode, routed map[string]bool, probes probeView, woke time.Time, handingOff, held bool) (earlyCampaign, bool) {
	state := rn.State()
	if state == natsserver.Closed || rn.IsObserver() && !held {
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
	g.sawTerm(now, rn.Term(), state, leader)
	if leader != "" && current {
		g.current = now
	}
	if state == natsserver.Leader && (woke.IsZero() || now.Sub(woke) >= electionRecentFor) {
		// A node that woke from a pause may still lead at a stale term until
		// it hears the new leader's: what it led then does not count.
		g.led = now
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
	case leader != self && probes.silentLeader(now, name, self, leader, peers, leaderSeen):
		g.leaderless, g.gone = time.Time{}, time.Time{}
	default:
		g.leaderless, g.gone = time.Time{}, time.Time{}
		return earlyCampaign{}, false
	}
	// The pre-vote: a leader that another peer still hears is alive, and
	// only the way to it is cut (b), or only its answers to this node are
	// late (c). For (b), only answers that came after the route closed
	// count: a killed leader's routes close on every node at once.
	if leader != "" && leader != self && probes.heardElsewhere(now, self, leader, peers, g.gone) {
		return earlyCampaign{}, false
	}
	// A leader that stepped down (for a peer's higher term: a node woke from
	// a pause) campaigns first and soon; no peer's log is longer than its own.
	former := !g.led.IsZero() && now.Sub(g.led) <= electionRecentFor && !g.leaderless.IsZero() && !handingOff
	// A node that woke from a pause calls no election for electionRecentFor
	// after it woke: its groups are behind, and every election it calls
	// raises a term that makes a healthy leader step down again.
	quiet := !woke.IsZero() && now.Sub(woke) < electionRecentFor
	fit := voter && state != natsserver.Leader && !quiet && (former || !g.peerCampaigning(now)) &&
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
		if former {
			settle = formerLeaderSettle
		}
		if state == natsserver.Candidate {
			settle = electionRetryAfter
		}
		if !current || now.Sub(g.leaderless) < settle {
			return earlyCampaign{}, false
		}
		c = earlyCampaign{group: name, former: former}
	case g.gone.IsZero():
		// The leader's node is silent (c): silentLeader waited its turn.
		c = earlyCampaign{group: name, leader: leader, silent: true}
	default:
		wait := electionSettle + time.Duration(campaignRank(name, self, leader, peers, routed))*electionStagger
		if now.Sub(g.gone) < wait || now.Sub(leaderSeen) < electionSettle {
			return earlyCampaign{}, false
		}
		c = earlyCampaign{group: name, leader: leader}
	}
	campaign := rn.Campaign
	if lo, hi := campaignDelay(c); lo == hi {
		campaign = func() error { return campaignAfter(rn, lo) }
	}
	if campaign() != nil {
		return earlyCampaign{}, false
	}
	g.campaigned = now
	return c, true
}

// campaignDelay returns the least and the most time after the watch makes a
// group campaign for c that it asks for votes: formerLeaderDelay for a former
// leader, rankedCampaignDelay for a follower of a gone or silent leader, which
// took its turn, and Campaign's random 0.1–0.8 s for a group without a leader,
// whose followers may all campaign at once.
func campaignDelay(c earlyCampaign) (lo, hi time.Duration) {
	switch {
	case c.former:
		return formerLeaderDelay, formerLeaderDelay
	case c.leader != "":
		return rankedCampaignDelay, rankedCampaignDelay
	default:
		return 100 * time.Millisecond, 800 * time.Millisecond
	}
}

// campaignRank is this node's place (0 first) among the group's voters that may
// follow a leader whose node is gone: the group's peers other than that leader
// that this node reaches, itself included, ordered by a hash of the group's name
// and the peer's id, so that the groups of a dead node prefer different nodes.
// They all see the dead node's routes close at once; each waits electionStagger
// longer than the one before it, and asks rankedCampaignDelay after its turn, so
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
// early (see above), every electionCheckEvery until ctx ends, with what the
// isolation watch's probes heard. The upkeep owns it.
func (n *Node) watchElections(ctx context.Context, probes *isolationWatch) {
	w := newElectionWatch(n.ns, probes)
	w.handingOff = func() time.Time { return time.Unix(0, n.handingOff.Load()) }
	// A watch that stopped (the node stops) checks no more: that is no pause.
	defer n.electionChecked.Store(0)
	defer w.releaseAll()
	defer w.wake.releaseAll(n.ns)
	everyTick(ctx, ledCheckEvery, func() bool {
		now := time.Now()
		campaigns := w.check(now, n.isolated.Load())
		switch put, released := w.holds(); {
		case put > 0:
			n.log.Info("raft groups held from campaigning: their leaders' nodes do not answer this one but answer a peer", "groups", put, "released", released)
		case released > 0:
			n.log.Info("raft groups free to campaign again: the pre-vote no longer holds them", "groups", released)
		}
		put, stepped, released := w.wake.counts()
		if put > 0 {
			n.log.Info("raft groups held from leading: this node woke from a pause", "groups", put)
		}
		if stepped > 0 {
			n.log.Info("raft group leaderships won since this node woke handed to current peers", "groups", stepped)
		}
		if released > 0 {
			n.log.Info("raft groups free to lead again after the wake", "groups", released)
		}
		if !w.woke.IsZero() {
			n.woke.Store(w.woke.UnixNano())
		}
		n.electionChecked.Store(now.UnixNano())
		for _, group := range w.confirmLeads() {
			n.log.Info("raft group heartbeat sent early: its new leader's first entry waits for acknowledgements", "raft", group)
		}
		for _, c := range campaigns {
			switch {
			case c.former:
				n.log.Info("raft group campaigning early: it has no leader since this node stepped down", "raft", c.group)
			case c.silent:
				n.log.Info("raft group campaigning early: its leader's node is silent", "raft", c.group, "leader", c.leader)
			case c.leader != "":
				n.log.Info("raft group campaigning early: its leader's node is gone", "raft", c.group, "leader", c.leader)
			default:
				n.log.Info("raft group campaigning early: it has no leader", "raft", c.group)
			}
		}
		return true
	})
}

// raftCampaignLocked is nats-server's (*raft).campaign, the body of
// RaftNode.Campaign: the group's election timer fires after et (no sooner
// than the timer's goroutine runs) and, still without a leader, it campaigns.
// The caller holds the group's lock. Linked as lookupRaftNode is
// (isolation_raft.go): its receiver, nats-server's unexported *raft, passed as
// the pointer it is; check it when nats-server is upgraded
// (TestSteppedDownLeaderElectedAgainSoon checks the effect).
//
//go:linkname raftCampaignLocked github.com/nats-io/nats-server/v2/server.(*raft).campaign
func raftCampaignLocked(n unsafe.Pointer, et time.Duration) error

// raftNodeType is the type of nats-server's RAFT nodes.
const raftNodeType = "*server.raft"

// campaignAfter makes rn campaign after d, as RaftNode.Campaign does after a
// random 0.1–0.8 s: the delay nats-server gives a follower that refused a vote
// for a staler log, meant to spread peers that all campaign at once. The
// watch calls it for the group's former leader, whose peers wait longer
// (electionSettle), and for a follower of a gone or silent leader, whose peers
// wait their turns (campaignDelay). Anything but nats-server's own RAFT node
// campaigns with Campaign.
func campaignAfter(rn natsserver.RaftNode, d time.Duration) error {
	l, ok := rn.(sync.Locker)
	if !ok || reflect.TypeOf(rn).String() != raftNodeType {
		return rn.Campaign()
	}
	// An interface value is a type word and a data word; the data word of a
	// *raft is the pointer itself.
	p := (*[2]unsafe.Pointer)(unsafe.Pointer(&rn))[1]
	l.Lock()
	defer l.Unlock()
	return raftCampaignLocked(p, d)
}
