package server

import (
	"cmp"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// TestIsolationWatch checks when a node counts itself cut off from its cluster:
// fewer than a majority of the nodes (itself included) answered within
// isolatedAfter, once a majority has answered.
func TestIsolationWatch(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type answer struct {
		node  string
		after time.Duration
	}
	tests := []struct {
		name    string
		size    int
		armed   bool // every other node answered at t0, and a check saw it
		answers []answer
		at      time.Duration
		want    bool
		reached int
	}{
		{name: "starting: nobody answered yet", size: 3, at: time.Minute, want: false},
		{name: "starting: one of two peers answered long ago", size: 3, answers: []answer{{"b", 0}}, at: time.Minute, want: false},
		{name: "nobody answered since", size: 3, armed: true, at: 3 * time.Second, want: true},
		{name: "one of two peers answers", size: 3, armed: true, answers: []answer{{"b", 2 * time.Second}}, at: 3 * time.Second, want: false, reached: 1},
		{name: "own answer does not count", size: 3, armed: true, answers: []answer{{"a", 2 * time.Second}}, at: 3 * time.Second, want: true},
		{name: "answers within the window", size: 3, armed: true, at: 2 * time.Second, want: false, reached: 2},
		{name: "five nodes, one peer answers", size: 5, armed: true, answers: []answer{{"b", 2 * time.Second}}, at: 3 * time.Second, want: true, reached: 1},
		{name: "five nodes, two peers answer", size: 5, armed: true, answers: []answer{{"b", 2 * time.Second}, {"c", 2 * time.Second}}, at: 3 * time.Second, want: false, reached: 2},
		{name: "two nodes, the peer is gone", size: 2, armed: true, at: 4 * time.Second, want: true},
		{name: "a single node is never cut off", size: 1, armed: true, at: time.Minute, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newIsolationWatch("a")
			w.lateAfter = 0 // the checks here jump seconds ahead: see TestIsolationWatchLateCheck
			if tc.armed {
				for _, n := range []string{"b", "c", "d", "e"}[:tc.size-1] {
					w.answered(n, t0)
				}
				if iso, _, _ := w.check(t0, tc.size); iso {
					t.Fatal("cut off while every node answers")
				}
			}
			for _, a := range tc.answers {
				w.answered(a.node, t0.Add(a.after))
			}
			got, changed, reached := w.check(t0.Add(tc.at), tc.size)
			if got != tc.want || changed != tc.want || reached != tc.reached {
				t.Errorf("check = (isolated %v, changed %v, reached %d), want (%v, %v, %d)", got, changed, reached, tc.want, tc.want, tc.reached)
			}
		})
	}
}

// TestIsolationWatchHeals checks that a node cut off counts itself back once a
// majority answers again, and says so once.
func TestIsolationWatchHeals(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := newIsolationWatch("a")
	w.answered("b", t0.Add(time.Second))
	if iso, _, _ := w.check(t0.Add(3*time.Second), 3); iso {
		t.Fatal("cut off while a peer answers")
	}
	if iso, changed, _ := w.check(t0.Add(4*time.Second), 3); !iso || !changed {
		t.Fatalf("check 3 s after the last answer = (%v, changed %v), want cut off, changed", iso, changed)
	}
	if iso, changed, _ := w.check(t0.Add(5*time.Second), 3); !iso || changed {
		t.Fatalf("second check while cut off = (%v, changed %v), want cut off, unchanged", iso, changed)
	}
	// Back only after a majority answered in every check for isolatedAfter.
	w.answered("c", t0.Add(6*time.Second))
	if iso, _, _ := w.check(t0.Add(6*time.Second), 3); !iso {
		t.Fatal("back at the first answer after the cut")
	}
	w.answered("c", t0.Add(8*time.Second))
	if iso, _, _ := w.check(t0.Add(8*time.Second), 3); !iso {
		t.Fatal("back 2 s after the first answer")
	}
	w.answered("c", t0.Add(9*time.Second))
	if iso, changed, reached := w.check(t0.Add(9*time.Second), 3); iso || !changed || reached != 1 {
		t.Fatalf("check 3 s after the first answer = (%v, changed %v, reached %d), want not cut off, changed, 1", iso, changed, reached)
	}
}

// TestIsolationWatchLateCheck: a node whose own checks stop for a while (it was
// paused, or starved of CPU) does not count itself cut off at its first check
// back, when every answer it holds is old, but only if the others stay silent
// for isolatedAfter of checks on time after it; answers that come meanwhile keep
// it in. Without the late check (lateAfter 0) it counted itself cut off at once.
func TestIsolationWatchLateCheck(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	armed := func(lateAfter time.Duration) *isolationWatch {
		w := newIsolationWatch("a")
		w.lateAfter = lateAfter
		for at := time.Duration(0); at <= time.Second; at += probeEvery {
			w.answered("b", t0.Add(at))
			w.answered("c", t0.Add(at))
			if iso, _, _ := w.check(t0.Add(at), 3); iso {
				t.Fatal("cut off while every node answers")
			}
		}
		return w
	}
	wake := t0.Add(16 * time.Second) // the checks stopped for 15 s

	// Silence after the wake: cut off once isolatedAfter of checks on time found none.
	w := armed(lateCheck)
	var cut time.Duration
	for at := wake; at.Sub(wake) <= 2*isolatedAfter; at = at.Add(probeEvery) {
		if iso, _, _ := w.check(at, 3); iso && cut == 0 {
			cut = at.Sub(wake)
		}
	}
	if cut != isolatedAfter {
		t.Errorf("silent after a late check: counted cut off %v after it, want %v", cut, isolatedAfter)
	}

	// Answers after the wake: never cut off.
	w = armed(lateCheck)
	for at := wake; at.Sub(wake) <= 2*isolatedAfter; at = at.Add(probeEvery) {
		if at.Sub(wake) >= probeEvery {
			w.answered("b", at.Add(-probeEvery/2))
		}
		if iso, _, _ := w.check(at, 3); iso {
			t.Fatalf("answered after a late check: counted cut off %v after it", at.Sub(wake))
		}
	}

	// The same wake without the late check: cut off at once.
	w = armed(0)
	if iso, _, _ := w.check(wake, 3); !iso {
		t.Error("without the late check the first check after the wake should count the node cut off")
	}
}

// TestRaftPeerIDMatchesServer: the RAFT peer id the hold computes from a node's
// name is the one nats-server gives that node, for several names.
func TestRaftPeerIDMatchesServer(t *testing.T) {
	for _, name := range []string{"n1", "node-2", "qxd-eu-west-3", "Ünïcode"} {
		s, err := natsserver.NewServer(&natsserver.Options{ServerName: name, Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		t.Cleanup(s.Shutdown)
		if got, want := raftPeerID(name), s.Node(); got != want {
			t.Errorf("raftPeerID(%q) = %q, nats-server's id is %q", name, got, want)
		}
	}
}

// TestIsolationWatchDoubtful: a node whose probes go out every probeEvery and
// that hears from fewer than a majority for doubtAfter doubts it reaches its
// cluster until it counts itself cut off (isolatedAfter) or hears from a
// majority again; a node that did not run on time, or has only just started,
// does not; a node whose peers' answers came slowly lately waits twice the
// slowest before it doubts, and one whose own answers to its probes come late
// counts the peers' silence in the probes it answered itself. Every peer
// answers each probe 5 ms after it goes out (or rtt) until it falls silent; the
// node answers its own selfLag after.
func TestIsolationWatchDoubtful(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const sec = time.Second
	tests := []struct {
		name    string
		size    int
		silent  map[string]time.Duration // when each peer stops answering
		paused  [2]time.Duration         // no probe, no check in between
		starved time.Duration            // the alive ticker stops from then (0: never)
		rtt     time.Duration            // each answer's delay (0: 5 ms)
		selfLag time.Duration            // the delay of the node's own answers (0: 5 ms)
		at      time.Duration
		want    bool
	}{
		{name: "every peer answers", size: 3, at: 12 * sec, want: false},
		{name: "cut 0.4 s ago, last answers 0.9 s ago", size: 3, silent: map[string]time.Duration{"b": 10 * sec, "c": 10 * sec}, at: 10*sec + 400*time.Millisecond, want: false},
		{name: "cut 1.5 s ago", size: 3, silent: map[string]time.Duration{"b": 10 * sec, "c": 10 * sec}, at: 11*sec + 500*time.Millisecond, want: true},
		{name: "cut 2.4 s ago", size: 3, silent: map[string]time.Duration{"b": 10 * sec, "c": 10 * sec}, at: 12*sec + 400*time.Millisecond, want: true},
		{name: "cut off: it knows", size: 3, silent: map[string]time.Duration{"b": 10 * sec, "c": 10 * sec}, at: 14 * sec, want: false},
		{name: "one peer silent: a majority answers", size: 3, silent: map[string]time.Duration{"b": 10 * sec}, at: 11*sec + 500*time.Millisecond, want: false},
		{name: "five nodes, three silent", size: 5, silent: map[string]time.Duration{"b": 10 * sec, "c": 10 * sec, "d": 10 * sec}, at: 11*sec + 500*time.Millisecond, want: true},
		{name: "five nodes, two silent", size: 5, silent: map[string]time.Duration{"b": 10 * sec, "c": 10 * sec}, at: 11*sec + 500*time.Millisecond, want: false},
		{name: "two nodes: never", size: 2, silent: map[string]time.Duration{"b": 10 * sec}, at: 11*sec + 500*time.Millisecond, want: false},
		{name: "woke from a pause 0.6 s ago", size: 3, paused: [2]time.Duration{8 * sec, 11 * sec}, at: 11*sec + 600*time.Millisecond, want: false},
		{name: "peers' answers late while its own ticker is late: starved, not cut", size: 3, silent: map[string]time.Duration{"b": 10 * sec, "c": 10 * sec}, starved: 10 * sec, at: 11*sec + 500*time.Millisecond, want: false},
		{name: "answers took 0.8 s lately, none for 1.2 s: slow, not doubted yet", size: 3, silent: map[string]time.Duration{"b": 10 * sec, "c": 10 * sec}, rtt: 800 * time.Millisecond, at: 11 * sec, want: false},
		{name: "own answers 0.8 s late: peers silent 1.7 s, 0.9 s of its own answered probes", size: 3, silent: map[string]time.Duration{"b": 10 * sec, "c": 10 * sec}, selfLag: 800 * time.Millisecond, at: 11*sec + 200*time.Millisecond, want: false},
		{name: "own answers 0.8 s late: peers silent 1 s of its own answered probes", size: 3, silent: map[string]time.Duration{"b": 10 * sec, "c": 10 * sec}, selfLag: 800 * time.Millisecond, at: 11*sec + 700*time.Millisecond, want: true},
		{name: "answers took 0.8 s lately, none for 1.7 s", size: 3, silent: map[string]time.Duration{"b": 10 * sec, "c": 10 * sec}, rtt: 800 * time.Millisecond, at: 11*sec + 500*time.Millisecond, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newIsolationWatch("a")
			peers := []string{"b", "c", "d", "e"}[:tc.size-1]
			for at := time.Duration(0); at <= tc.at; at += probeEvery {
				if at > tc.paused[0] && at < tc.paused[1] {
					continue
				}
				if tc.starved == 0 || at < tc.starved {
					w.alive(t0.Add(at))
				}
				rtt := cmp.Or(tc.rtt, 5*time.Millisecond)
				for _, p := range peers {
					if s, ok := tc.silent[p]; !ok || at+rtt < s {
						w.roundTrip(p, rtt, t0.Add(at+rtt))
						w.answered(p, t0.Add(at+rtt))
						w.probeAnswered(p, t0.Add(at))
					}
				}
				if at+cmp.Or(tc.selfLag, 5*time.Millisecond) <= tc.at {
					w.probeAnswered("a", t0.Add(at))
				}
				if at+probeEvery <= tc.at {
					w.check(t0.Add(at+probeEvery), tc.size)
				}
			}
			if got := w.doubtful(t0.Add(tc.at)); got != tc.want {
				t.Errorf("doubtful at %v = %v, want %v", tc.at, got, tc.want)
			}
		})
	}
}

// TestDoubtAfterAWokenPeer checks that the answers a peer woken from a pause
// sends at once, to the probes it missed, do not count as slow answers: a cut
// 2 s after the wake is doubted after doubtAfter, not after the doubt's bound.
func TestDoubtAfterAWokenPeer(t *testing.T) {
	t.Parallel()
	const sec = time.Second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pause := [2]time.Duration{5 * sec, 8 * sec} // b paused
	cut := 10 * sec                             // both peers silent from here
	at := 11*sec + 500*time.Millisecond
	w := newIsolationWatch("a")
	rtt := 5 * time.Millisecond
	var missed []time.Duration // probes b missed while paused
	for p := time.Duration(0); p <= at; p += probeEvery {
		w.alive(t0.Add(p))
		for _, peer := range []string{"b", "c"} {
			switch {
			case p+rtt >= cut:
			case peer == "b" && p >= pause[0] && p < pause[1]:
				missed = append(missed, p)
			default:
				if peer == "b" && p >= pause[1] {
					for _, m := range missed { // answered at once on waking
						w.roundTrip("b", p-m, t0.Add(p))
						w.answered("b", t0.Add(p))
						w.probeAnswered("b", t0.Add(m))
					}
					missed = nil
				}
				w.roundTrip(peer, rtt, t0.Add(p+rtt))
				w.answered(peer, t0.Add(p+rtt))
				w.probeAnswered(peer, t0.Add(p))
			}
		}
		w.probeAnswered("a", t0.Add(p))
		if p+probeEvery <= at {
			w.check(t0.Add(p+probeEvery), 3)
		}
	}
	if !w.doubtful(t0.Add(at)) {
		t.Errorf("not doubtful %v after the cut, %v after a peer woke from a pause (doubt wait %v)", at-cut, cut-pause[1], w.doubtWaitLocked(t0.Add(at)))
	}
}
