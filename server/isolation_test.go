package server

import (
	"testing"
	"time"
)

// TestIsolationWatch checks when a node counts itself cut off from its cluster:
// fewer than a majority of the nodes (itself included) answered within
// isolatedAfter, and never in its first isolatedAfter.
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
		answers []answer
		at      time.Duration
		want    bool
		reached int
	}{
		{name: "just started, nobody answered yet", size: 3, at: time.Second, want: false},
		{name: "nobody answered", size: 3, at: 3 * time.Second, want: true},
		{name: "one of two peers answers", size: 3, answers: []answer{{"b", 2 * time.Second}}, at: 3 * time.Second, want: false, reached: 1},
		{name: "the answer is too old", size: 3, answers: []answer{{"b", 0}}, at: 3 * time.Second, want: true},
		{name: "own answer does not count", size: 3, answers: []answer{{"a", 2 * time.Second}}, at: 3 * time.Second, want: true},
		{name: "five nodes, one peer answers", size: 5, answers: []answer{{"b", 2 * time.Second}}, at: 3 * time.Second, want: true, reached: 1},
		{name: "five nodes, two peers answer", size: 5, answers: []answer{{"b", 2 * time.Second}, {"c", 2 * time.Second}}, at: 3 * time.Second, want: false, reached: 2},
		{name: "two nodes, the peer is gone", size: 2, answers: []answer{{"b", 0}}, at: 4 * time.Second, want: true},
		{name: "a single node is never cut off", size: 1, at: time.Minute, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newIsolationWatch("a", t0)
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
	w := newIsolationWatch("a", t0)
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
	w.answered("c", t0.Add(6*time.Second))
	if iso, changed, reached := w.check(t0.Add(6*time.Second), 3); iso || !changed || reached != 1 {
		t.Fatalf("check after an answer = (%v, changed %v, reached %d), want not cut off, changed, 1", iso, changed, reached)
	}
}
