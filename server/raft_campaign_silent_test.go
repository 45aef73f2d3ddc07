package server

import (
	"fmt"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// TestSilentLeader checks case (c) of the election watch (raft_campaign.go):
// when a group whose leader's node still has routes may be made to campaign
// because that node is silent. Node "a" is this node, "b" the leader, which
// stops answering at 10 s; the isolation watch probes every probeEvery and the
// live nodes answer each probe 5 ms after it goes out.
func TestSilentLeader(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const (
		sec          = time.Second
		lastAnswered = 9*sec + 505*time.Millisecond // b's last answer
	)
	type span struct{ from, to time.Duration }
	tests := []struct {
		name     string
		nodes    []string                 // the cluster, "a" first
		peers    []string                 // the group's peers (default a, b, c)
		silent   map[string]time.Duration // when each node stops answering (b: 10 s)
		paused   []span                   // when this node sends no probe and runs no check
		rank     int                      // this node's turn among the followers
		raftLast time.Duration            // when the group last heard b over RAFT (default 9.5 s)
		at       time.Duration
		want     bool
	}{
		{name: "leader silent, this node's turn first", at: lastAnswered + silentAfter + 100*time.Millisecond, want: true},
		{name: "leader silent 1.9 s", at: lastAnswered + silentAfter - 100*time.Millisecond, want: false},
		{name: "leader silent, this node second, before its turn", rank: 1,
			at: lastAnswered + silentAfter + 500*time.Millisecond, want: false},
		{name: "leader silent, this node second, its turn", rank: 1,
			at: lastAnswered + silentAfter + electionStagger + 100*time.Millisecond, want: true},
		{name: "leader's RAFT heard lately", raftLast: 11 * sec, at: 12 * sec, want: false},
		{name: "leader never answered", silent: map[string]time.Duration{"b": 0}, at: 12 * sec, want: false},
		// Paused itself, this node sent no probes: every node's last answer is
		// old. c answers the first probe after the wake at 11.5 s; b, paused
		// too, does not. Its silence counts only after silentAfter of probes on
		// time.
		{name: "this node paused, its probes on time again for 0.2 s", paused: []span{{9*sec + 200*time.Millisecond, 11*sec + 200*time.Millisecond}},
			at: 11*sec + 700*time.Millisecond, want: false},
		{name: "this node paused, its probes on time again for 2 s", paused: []span{{9*sec + 200*time.Millisecond, 11*sec + 200*time.Millisecond}},
			at: 13*sec + 600*time.Millisecond, want: true},
		{name: "this node starved: a probe missed every 2 s", paused: []span{{8 * sec, 9 * sec}, {10 * sec, 11 * sec}, {12 * sec, 13 * sec}},
			at: 13*sec + 600*time.Millisecond, want: false},
		{name: "the other follower silent too: no quorum answers", silent: map[string]time.Duration{"b": 10 * sec, "c": 10 * sec},
			at: lastAnswered + silentAfter + 100*time.Millisecond, want: false},
		{name: "five-node cluster, leader silent", nodes: []string{"a", "b", "c", "d", "e"},
			at: 12*sec + 600*time.Millisecond, want: true},
		// The group's quorum (a, c) answers, but the cluster's (3 of 5) does not.
		{name: "five-node cluster, cut off though the group's quorum answers", nodes: []string{"a", "b", "c", "d", "e"},
			silent: map[string]time.Duration{"b": 10 * sec, "d": 5 * sec, "e": 5 * sec},
			at:     12*sec + 600*time.Millisecond, want: false},
		// d and e last answered 1.6 s ago: too long for the quorum, not yet for
		// the cut (2.5 s).
		{name: "five-replica group, one of the other four answers lately", nodes: []string{"a", "b", "c", "d", "e"}, peers: []string{"a", "b", "c", "d", "e"},
			silent: map[string]time.Duration{"b": 10 * sec, "d": 10*sec + 500*time.Millisecond, "e": 10*sec + 500*time.Millisecond},
			at:     lastAnswered + silentAfter + 100*time.Millisecond, want: false},
		{name: "five-replica group, two of the other four answer", nodes: []string{"a", "b", "c", "d", "e"}, peers: []string{"a", "b", "c", "d", "e"},
			silent: map[string]time.Duration{"b": 10 * sec, "d": 10*sec + 500*time.Millisecond},
			at:     lastAnswered + silentAfter + 100*time.Millisecond, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nodes, names := tt.nodes, tt.peers
			if nodes == nil {
				nodes = []string{"a", "b", "c"}
			}
			if names == nil {
				names = []string{"a", "b", "c"}
			}
			silent := tt.silent
			if silent == nil {
				silent = map[string]time.Duration{"b": 10 * sec}
			}
			raftLast := tt.raftLast
			if raftLast == 0 {
				raftLast = 9*sec + 500*time.Millisecond
			}
			var peers []*natsserver.Peer
			for _, name := range names {
				peers = append(peers, &natsserver.Peer{ID: raftPeerID(name)})
			}
			group := rankedGroup(t, tt.rank, peers)
			w := newIsolationWatch("a")
			for at := time.Duration(0); at <= tt.at; at += probeEvery {
				paused := false
				for _, p := range tt.paused {
					paused = paused || at >= p.from && at < p.to
				}
				if paused {
					continue
				}
				w.check(t0.Add(at), len(nodes))
				for _, node := range nodes[1:] {
					s, ok := silent[node]
					if answer := at + 5*time.Millisecond; (!ok || answer < s) && answer <= tt.at {
						w.answered(node, t0.Add(answer))
					}
				}
			}
			now := t0.Add(tt.at)
			v := w.probed(now)
			got := v.silentLeader(now, group, raftPeerID("a"), raftPeerID("b"), peers, t0.Add(raftLast))
			if got != tt.want {
				t.Errorf("silentLeader at %v = %v, want %v (probes on time %v, cut off %v)", tt.at, got, tt.want, v.onTime, v.cutOff)
			}
		})
	}
}

// rankedGroup returns a group name for which this node ("a") ranks rank among
// the followers of leader "b" that answer (every peer but the leader).
func rankedGroup(t *testing.T, rank int, peers []*natsserver.Peer) string {
	t.Helper()
	others := map[string]bool{}
	for _, p := range peers {
		others[p.ID] = true
	}
	for i := range 1000 {
		g := fmt.Sprintf("S-group-%d", i)
		if campaignRank(g, raftPeerID("a"), raftPeerID("b"), peers, others) == rank {
			return g
		}
	}
	t.Fatalf("no group name ranks this node %d", rank)
	return ""
}

// TestSilentLeaderTurnsDoNotOverlap checks that the two followers of a silent
// leader (case (c), raft_campaign.go) do not both call its election: whatever
// the phases of their probes and of their election watches' checks, the first
// one's vote request has gone out, by a vote's round trip, before the second
// one's turn comes (it then sees the first one's term and stands down:
// TestPeerCampaigning). Each follower measures the silence from the last answer
// to its own probes, and checks every electionCheckEvery; the first asks for
// votes campaignDelay after its check. Leader "b" stops answering at 10 s;
// "a" ranks first, "c" second.
func TestSilentLeaderTurnsDoNotOverlap(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const (
		sec     = time.Second
		stopped = 10 * sec
		step    = 50 * time.Millisecond // the phases tried
		// roundTrip is what the first one's vote request may take to reach
		// the second one, on a loaded machine.
		roundTrip = 100 * time.Millisecond
	)
	var peers []*natsserver.Peer
	for _, name := range []string{"a", "b", "c"} {
		peers = append(peers, &natsserver.Peer{ID: raftPeerID(name)})
	}
	group := rankedGroup(t, 0, peers)
	if r := campaignRank(group, raftPeerID("c"), raftPeerID("b"), peers, map[string]bool{raftPeerID("a"): true}); r != 1 {
		t.Fatalf("c ranks %d, want 1", r)
	}
	// turn returns when self, probing at probePhase and checking at
	// checkPhase, first finds the leader silent.
	turn := func(self string, probePhase, checkPhase time.Duration) time.Duration {
		w := newIsolationWatch(self)
		probe, answered := probePhase, probePhase // the next probe, the next probe to answer
		for at := checkPhase; at < 20*sec; at += electionCheckEvery {
			for ; probe <= at; probe += probeEvery {
				w.check(t0.Add(probe), 3)
			}
			for ; answered+5*time.Millisecond <= at; answered += probeEvery {
				for _, node := range []string{"a", "b", "c"} {
					if answer := answered + 5*time.Millisecond; node != self && (node != "b" || answer < stopped) {
						w.answered(node, t0.Add(answer))
					}
				}
			}
			now := t0.Add(at)
			// The group last heard b over RAFT just before it stopped.
			if w.probed(now).silentLeader(now, group, raftPeerID(self), raftPeerID("b"), peers, t0.Add(stopped-100*time.Millisecond)) {
				return at
			}
		}
		t.Fatalf("%s never found b silent", self)
		return 0
	}
	_, hi := campaignDelay(earlyCampaign{group: group, leader: raftPeerID("b"), silent: true})
	var firstLatest, secondEarliest time.Duration
	secondEarliest = time.Hour
	for pa := time.Duration(0); pa < probeEvery; pa += step {
		for ca := time.Duration(0); ca < electionCheckEvery; ca += step {
			firstLatest = max(firstLatest, turn("a", pa, ca)+hi)
		}
	}
	for pc := time.Duration(0); pc < probeEvery; pc += step {
		for cc := time.Duration(0); cc < electionCheckEvery; cc += step {
			secondEarliest = min(secondEarliest, turn("c", pc, cc))
		}
	}
	t.Logf("a asks for votes %v after b stopped at the latest, c's turn comes %v after at the earliest", firstLatest-stopped, secondEarliest-stopped)
	if secondEarliest-firstLatest < roundTrip {
		t.Errorf("c's turn may come %v after a asked for votes, want at least %v: both may call the election and split the vote",
			secondEarliest-firstLatest, roundTrip)
	}
}

// TestPeerCampaigning checks when a follower leaves a group's election to a
// peer that campaigns (raft_campaign.go, sawTerm): from when it sees the
// group's term rise while it is a follower without a leader, for
// standDownFor, or until it has a leader again.
func TestPeerCampaigning(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const ms = time.Millisecond
	leader := raftPeerID("b")
	type seen struct {
		at     time.Duration
		term   uint64
		state  natsserver.RaftState
		leader string
	}
	follow := seen{0, 5, natsserver.Follower, leader}
	tests := []struct {
		name string
		seen []seen
		at   time.Duration
		want bool
	}{
		{name: "following its leader", seen: []seen{follow}, at: 200 * ms, want: false},
		{name: "its leader silent, same term", seen: []seen{follow, {200 * ms, 5, natsserver.Follower, leader}}, at: 200 * ms, want: false},
		{name: "a peer's vote request raised the term", seen: []seen{follow, {200 * ms, 6, natsserver.Follower, ""}}, at: 400 * ms, want: true},
		{name: "a peer's vote request, standDownFor ago", seen: []seen{follow, {200 * ms, 6, natsserver.Follower, ""}}, at: 200*ms + standDownFor, want: false},
		{name: "the peer won", seen: []seen{follow, {200 * ms, 6, natsserver.Follower, ""}, {400 * ms, 6, natsserver.Follower, raftPeerID("c")}}, at: 400 * ms, want: false},
		{name: "its own campaign raised the term", seen: []seen{follow, {200 * ms, 6, natsserver.Candidate, ""}}, at: 400 * ms, want: false},
		{name: "a candidate that split the vote, a peer's higher term", seen: []seen{follow, {200 * ms, 6, natsserver.Candidate, ""}, {400 * ms, 7, natsserver.Follower, ""}}, at: 600 * ms, want: true},
		{name: "a new leader's append raised the term", seen: []seen{follow, {200 * ms, 6, natsserver.Follower, raftPeerID("c")}}, at: 400 * ms, want: false},
		{name: "first seen without a leader", seen: []seen{{0, 6, natsserver.Follower, ""}}, at: 200 * ms, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var g groupElection
			for _, s := range tt.seen {
				g.sawTerm(t0.Add(s.at), s.term, s.state, s.leader)
			}
			if got := g.peerCampaigning(t0.Add(tt.at)); got != tt.want {
				t.Errorf("peerCampaigning at %v = %v, want %v", tt.at, got, tt.want)
			}
		})
	}
}
