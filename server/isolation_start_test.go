package server

import (
	"testing"
	"time"
)

// TestIsolationWatchStartsCutOff checks a node that no majority of its cluster has
// answered since its first check: in a cluster of three nodes or more it counts
// itself cut off after startCutOffAfter, and back once a majority answers; a
// single node, a pair, and a cluster that forms within the window never do.
func TestIsolationWatchStartsCutOff(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type answer struct {
		node  string
		after time.Duration
	}
	tests := []struct {
		name    string
		size    int
		answers []answer
		want    time.Duration // first check counting the node cut off; 0: none within a minute
	}{
		{name: "three nodes, no peer ever answers", size: 3, want: startCutOffAfter},
		{name: "five nodes, one peer answers", size: 5, answers: []answer{{"b", time.Second}}, want: startCutOffAfter},
		{name: "three nodes forming: a peer answers within the window", size: 3, answers: []answer{{"b", startCutOffAfter - time.Second}}},
		{name: "a single node", size: 1},
		{name: "a pair whose peer never answers", size: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newIsolationWatch("a")
			var got time.Duration
			for at := time.Duration(0); at <= time.Minute; at += probeEvery {
				for _, a := range tc.answers {
					// a peer that answered keeps answering at every probe
					if at >= a.after {
						w.answered(a.node, t0.Add(at))
					}
				}
				if iso, _, _ := w.check(t0.Add(at), tc.size); iso && got == 0 {
					got = at
				}
			}
			if got != tc.want {
				t.Errorf("counted cut off at %v, want %v (0: never)", got, tc.want)
			}
		})
	}

	// A node that started cut off counts itself back once a majority has
	// answered for isolatedAfter, as after any cut.
	w := newIsolationWatch("a")
	w.lateAfter = 0 // the checks jump ahead: see TestIsolationWatchLateCheck
	w.check(t0, 3)
	if iso, changed, _ := w.check(t0.Add(startCutOffAfter), 3); !iso || !changed {
		t.Fatalf("no majority for startCutOffAfter: (%v, changed %v), want cut off, changed", iso, changed)
	}
	heal := t0.Add(startCutOffAfter + time.Second)
	for at := heal; at.Sub(heal) < isolatedAfter; at = at.Add(probeEvery) {
		w.answered("b", at)
		if iso, _, _ := w.check(at, 3); !iso {
			t.Fatalf("back %v after a majority answered, want after %v", at.Sub(heal), isolatedAfter)
		}
	}
	w.answered("b", heal.Add(isolatedAfter))
	if iso, changed, _ := w.check(heal.Add(isolatedAfter), 3); iso || !changed {
		t.Fatalf("a majority answered for isolatedAfter: (%v, changed %v), want not cut off, changed", iso, changed)
	}
}
