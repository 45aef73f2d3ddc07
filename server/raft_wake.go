package server

import (
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// A node that wakes from a pause (SIGSTOP, a VM freeze) finds every election
// timer of its RAFT groups long past: nats-server v2.15.2 makes each group a
// candidate at a term one above the one it slept in, with no pre-vote. A
// healthy leader that hears that term steps down (raft.go,
// processAppendEntryResponse, processVoteRequest), and where the group took no
// writes during the pause — the groups, topics, transactions and bridges
// buckets of a quiet cluster — the woken node's log is as long as the leader's,
// so the leader grants it its vote and the woken node wins: in the fault
// drills it won the groups bucket about 0.2 s after the wake, the group
// coordinator moved to it (loading every group; members looking for it), and
// the follow (leaders_follow.go) then moved the offsets bucket there too.
// Committed offsets stood still for 2–4 s at the wake.
//
// The deposing itself is nats-server's: the woken node's term is raised before
// any qxd code runs, and a leader that sees it must step down. What qxd can
// decide is who leads next. A node just back should not be handed leaderships
// until it has caught up and been healthy for a while, so the election watch,
// at the check that finds the pause (electionGap), puts every replicated group
// of the node that is not an observer yet into observer mode (the wake hold):
// an observer still follows, stores and votes, but never campaigns, and a
// leadership handed to it is refused. The healthy former leader then
// campaigns early (raft_campaign.go, formerLeaderSettle) and wins with the
// woken node's vote. A group the woken node won anyway — its vote request went
// out before the hold, when its timers fired — it hands to a current peer
// at once (RaftNode.StepDown picks one heard within nats-server's live window),
// which elects it in one round trip. A group it still leads at the term it
// slept in is left alone: it steps down on its own once it hears the new term.
//
// The hold ends for a group once wakeHoldFor has passed since the wake and the
// group is current under a leader, and for every group after wakeHoldMax. The
// meta group is left out, as the cut-off hold leaves it out (isolation_raft.go),
// and so is a group that has no other peer: nobody else could lead it.
const (
	// wakeHoldFor is how long after a wake the node's groups stay observers
	// at least: long enough for the healthy nodes' elections that its terms
	// caused to end (a former leader's campaign takes 0.1–0.2 s, a follower's
	// under a second) and for the node to hear each group's leader again.
	wakeHoldFor = 5 * time.Second
	// wakeHoldMax is how long a group that is not yet current is held at
	// most: an observer that never counts as current must not be kept out of
	// elections for good.
	wakeHoldMax = 30 * time.Second
)

// wakeHold is the set of groups the wake hold put into observer mode. The
// election watch owns it.
type wakeHold struct {
	since time.Time         // the wake; zero: no hold
	terms map[string]uint64 // group → its term before the pause
	// put, stepped and released count the groups held, handed off and let go
	// since the caller last read them.
	put, stepped, released int
}

// holdAll puts every replicated group of ns but the meta group that is not an
// observer yet into observer mode, at now, the wake. slept is each group's
// term at the last check before the pause, where the watch knew it.
func (h *wakeHold) holdAll(ns *natsserver.Server, now time.Time, slept map[string]uint64) {
	h.since = now
	if h.terms == nil {
		h.terms = map[string]uint64{}
	}
	for name, observer := range newRaftHold(ns).raftGroups() {
		if observer || name == metaGroup {
			continue
		}
		if _, ok := h.terms[name]; ok {
			continue
		}
		rn := lookupRaftNode(ns, name)
		if rn == nil || len(rn.Peers()) < 2 || rn.IsObserver() {
			continue
		}
		term, ok := slept[name]
		if !ok {
			// A group the watch had not listed before the pause (made
			// within electionListEvery of it): a candidate's timer fired
			// at the wake and raised its term by one, and a leadership it
			// wins at that term was won since the wake.
			term = rn.Term()
			if rn.State() == natsserver.Candidate && term > 0 {
				term--
			}
		}
		rn.SetObserver(true)
		h.terms[name] = term
		h.put++
	}
}

// tend hands off, at now, each held group the node leads at a term above the
// one it slept in (won since the wake: its vote request went out when its
// timer fired, before the hold), and lets go of each group whose hold is over
// (see above).
func (h *wakeHold) tend(ns *natsserver.Server, now time.Time) {
	for name, term := range h.terms {
		rn := lookupRaftNode(ns, name)
		if rn == nil {
			delete(h.terms, name)
			continue
		}
		since := now.Sub(h.since)
		if since >= wakeHoldMax || since >= wakeHoldFor && rn.State() == natsserver.Follower && rn.GroupLeader() != "" && rn.Current() {
			delete(h.terms, name)
			rn.SetObserver(false)
			h.released++
			continue
		}
		if rn.State() == natsserver.Leader && rn.Term() > term {
			if rn.StepDown() == nil {
				h.stepped++
			}
		}
	}
	if len(h.terms) == 0 {
		h.since = time.Time{}
	}
}

// releaseAll lets go of every group the wake hold holds.
func (h *wakeHold) releaseAll(ns *natsserver.Server) {
	for name := range h.terms {
		delete(h.terms, name)
		if rn := lookupRaftNode(ns, name); rn != nil {
			rn.SetObserver(false)
			h.released++
		}
	}
	h.since = time.Time{}
}

// counts returns how many groups were held, handed off and let go since the
// last call.
func (h *wakeHold) counts() (put, stepped, released int) {
	put, stepped, released = h.put, h.stepped, h.released
	h.put, h.stepped, h.released = 0, 0, 0
	return put, stepped, released
}

// holding reports whether the wake hold holds any group.
func (h *wakeHold) holding() bool { return len(h.terms) > 0 }
