package server

import (
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// TestPreVote checks the pre-vote of the election watch (heardElsewhere,
// raft_campaign.go) and the client move it shares its evidence with (cutFrom,
// isolation.go). Node "a" is this node, "b" the group's leader and "c" the
// group's third peer; from 10 s on, b stops answering a only (a cut between
// a and b), or everyone (a pause), or its routes close too (a kill). a probes
// at every probeEvery, c a quarter of a second later; a live node answers 5 ms
// after a probe, and c's answers to a say when c last heard each node it has
// a route to. a must not campaign against b while c still hears it, and must
// as before when b is paused or killed.
func TestPreVote(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const (
		sec    = time.Second
		ms     = time.Millisecond
		fault  = 10 * sec
		cPhase = 250 * ms
	)
	tests := []struct {
		name  string
		fault string        // "pair", "pause", "kill" (at fault)
		at    time.Duration // when a decides
		since time.Duration // when a's route to b closed, for case (b); 0: case (c)
		peers []string      // the group's peers (default a, b, c)
		cDies time.Duration // when c stops answering a (0: never)
		// a's ticker (isolationWatch.alive) misses its ticks from stall
		// for stallFor: a is starved of CPU (0: never).
		stall, stallFor time.Duration
		want            bool // a holds back
	}{
		// Case (c) would make a campaign from 2 s after b's last answer.
		{name: "pair cut, b silent to a for 2.1 s", fault: "pair", at: fault + 2*sec + 100*ms, want: true},
		{name: "pair cut, 1 s in: a holds its timer", fault: "pair", at: fault + sec, want: true},
		{name: "pair cut, route closed 7 s in", fault: "pair", since: fault + 7*sec, at: fault + 7*sec + 300*ms, want: true},
		{name: "pair cut for 15 s", fault: "pair", at: fault + 15*sec, want: true},
		{name: "pair cut, but c is not the group's peer", fault: "pair", peers: []string{"a", "b", "d"}, at: fault + 2*sec + 100*ms, want: false},
		{name: "pair cut, c silent to a too", fault: "pair", cDies: fault + sec, at: fault + 2*sec + 100*ms, want: false},
		// A node whose ticker ran late lately hears everyone late: it moves
		// no client, however the others' answers read.
		{name: "pair cut, a starved 1.5 s just before", fault: "pair", stall: fault + 500*ms, stallFor: 1500 * ms, at: fault + 3*sec, want: true},
		// b's silence counts from its last answers, on a and c alike: at
		// 11.6 s b's last answer to a is 2.1 s old, and (c) makes a campaign.
		{name: "b paused, when (c) makes a campaign", fault: "pause", at: fault + 1600*ms, want: false},
		{name: "b paused 2 s", fault: "pause", at: fault + 2*sec, want: false},
		// A killed node's routes close on every node at once: c's answers
		// from then on do not name b. Only answers after a's route closed
		// count (a asks for one at once, probeSoon).
		{name: "b killed, a's route closed 0.3 s ago", fault: "kill", since: fault, at: fault + 300*ms, want: false},
		{name: "b killed between probes, c's last answer from before", fault: "kill", since: fault + 200*ms, at: fault + 500*ms, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			names := tt.peers
			if names == nil {
				names = []string{"a", "b", "c"}
			}
			var peers []*natsserver.Peer
			for _, name := range names {
				peers = append(peers, &natsserver.Peer{ID: raftPeerID(name)})
			}
			kill := fault
			if tt.fault == "kill" && tt.since > fault {
				kill = tt.since
			}
			bAnswersA := func(at time.Duration) bool { return at < fault }
			// c's view of b: when c last heard it, and whether c routes to it.
			cHeardB := func(at time.Duration) (time.Duration, bool) {
				last := time.Duration(-1)
				for p := cPhase; p+5*ms <= at; p += probeEvery {
					if tt.fault == "pair" || p+5*ms < fault {
						last = p + 5*ms
					}
				}
				routed := tt.fault != "kill" || at < kill
				return last, routed && last >= 0
			}
			w := newIsolationWatch("a")
			for at := time.Duration(0); at <= tt.at; at += probeEvery {
				if tt.stallFor == 0 || at < tt.stall || at >= tt.stall+tt.stallFor {
					w.alive(t0.Add(at))
				}
				w.check(t0.Add(at), 3)
				answer := at + 5*ms
				if answer > tt.at {
					break
				}
				if bAnswersA(answer) {
					w.reported("b", t0.Add(answer), nil)
				}
				if tt.cDies == 0 || answer < tt.cDies {
					reaches := map[string]int64{}
					if h, ok := cHeardB(answer); ok {
						reaches["b"] = (answer - h).Milliseconds()
					}
					w.reported("c", t0.Add(answer), reaches)
				}
			}
			now := t0.Add(tt.at)
			since := time.Time{}
			if tt.since > 0 {
				since = t0.Add(tt.since)
			}
			v := w.probed(now)
			if got := v.heardElsewhere(now, raftPeerID("a"), raftPeerID("b"), peers, since); got != tt.want {
				t.Errorf("heardElsewhere at %v = %v, want %v", tt.at, got, tt.want)
			}
			// The client move: b answers c, not a, for silentAfter, and a
			// ran on time for silentAfter (its RAFT's silence is checked
			// apart, raftUnheardFrom).
			wantCut := tt.fault == "pair" && tt.cDies == 0 && tt.at-(fault-probeEvery+5*ms) >= silentAfter &&
				(tt.stallFor == 0 || tt.at-(tt.stall+tt.stallFor) >= silentAfter)
			if got := w.cutFrom(now); (got == "b") != wantCut {
				t.Errorf("cutFrom at %v = %q, want b: %v", tt.at, got, wantCut)
			}
		})
	}
}

// TestProbedRunning checks what the pre-vote's hold learns of this node's own
// ticker (probeView.running): a node whose ticker (isolationWatch.alive) ran
// on time for silentAfter runs; one whose ticker missed ticks lately, starved
// of CPU or paused, does not until it has run on time for silentAfter again,
// nor while its last tick is late; the checks alone (the probe loop) do not
// make it run.
func TestProbedRunning(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := newIsolationWatch("a")
	tick := func(from, to time.Duration) {
		for at := from; at <= to; at += probeEvery {
			w.alive(t0.Add(at))
			w.check(t0.Add(at), 3)
		}
	}
	tests := []struct {
		name string
		at   time.Duration
		want bool
	}{
		{"ran on time for 3 s", 3 * time.Second, true},
		{"last tick 1.2 s ago", 4200 * time.Millisecond, false},
		{"on time again for 1 s after a 1.5 s gap", 5500 * time.Millisecond, false},
		{"on time again for 2 s after the gap", 6500 * time.Millisecond, true},
	}
	tick(0, 3*time.Second)
	for _, tt := range tests {
		switch tt.at {
		case 5500 * time.Millisecond:
			w.check(t0.Add(4*time.Second), 3) // the probe loop runs on
			tick(4500*time.Millisecond, tt.at)
		case 6500 * time.Millisecond:
			tick(6*time.Second, tt.at)
		}
		if got := w.probed(t0.Add(tt.at)).running; got != tt.want {
			t.Errorf("%s: running = %v, want %v", tt.name, got, tt.want)
		}
	}
}
