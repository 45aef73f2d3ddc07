package server

import (
	"testing"
	"time"
)

// TestIsolationWatchCutByNetwork checks when the routes alone make a node tell
// its clients to move: peers enough to leave it without a majority have sent
// nothing over their routes for routeQuietAfter and the kernel retransmits on
// one of them, while the node runs on time. Quiet routes the kernel keeps
// acknowledging are a slow or loaded peer, not a cut.
func TestIsolationWatchCutByNetwork(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const ms = time.Millisecond
	cut := routeState{quiet: 300 * ms, stalled: true}
	loaded := routeState{quiet: 900 * ms}
	fine := routeState{quiet: 20 * ms}
	tests := []struct {
		name     string
		size     int
		routes   map[string]routeState
		starved  bool // the alive ticker stopped 1 s before
		isolated bool // the node counts itself cut off already
		want     bool
	}{
		{name: "every route carries messages", size: 3, routes: map[string]routeState{"b": fine, "c": fine}, want: false},
		{name: "cut: both peers' routes quiet and retransmitting", size: 3, routes: map[string]routeState{"b": cut, "c": cut}, want: true},
		{name: "one peer cut, no route left to the other", size: 3, routes: map[string]routeState{"b": cut}, want: true},
		{name: "loaded: routes quiet for 0.9 s, every segment acknowledged", size: 3, routes: map[string]routeState{"b": loaded, "c": loaded}, want: false},
		{name: "one peer cut, the other loaded", size: 3, routes: map[string]routeState{"b": cut, "c": loaded}, want: false},
		{name: "retransmitting but quiet only 0.1 s", size: 3, routes: map[string]routeState{"b": {quiet: 100 * ms, stalled: true}, "c": {quiet: 100 * ms, stalled: true}}, want: false},
		{name: "starved: its own ticker is late", size: 3, routes: map[string]routeState{"b": cut, "c": cut}, starved: true, want: false},
		{name: "cut off already: the probes decide", size: 3, routes: map[string]routeState{"b": cut, "c": cut}, isolated: true, want: false},
		{name: "five nodes, three cut", size: 5, routes: map[string]routeState{"b": cut, "c": cut, "d": cut, "e": fine}, want: true},
		{name: "five nodes, two cut", size: 5, routes: map[string]routeState{"b": cut, "c": cut, "d": fine, "e": fine}, want: false},
		{name: "two nodes: never", size: 2, routes: map[string]routeState{"b": cut}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newIsolationWatch("a")
			peers := []string{"b", "c", "d", "e"}[:tc.size-1]
			end := 10 * time.Second
			for at := time.Duration(0); at <= end; at += probeEvery {
				if !tc.starved || at < end-time.Second {
					w.alive(t0.Add(at))
				}
				for _, p := range peers {
					w.answered(p, t0.Add(at+5*ms))
				}
				w.check(t0.Add(at+probeEvery), tc.size)
			}
			w.isolated = tc.isolated
			at := t0.Add(end + probeEvery + 300*ms)
			if got := w.cutByNetwork(at, tc.routes); got != tc.want {
				t.Errorf("cutByNetwork = %v, want %v", got, tc.want)
			}
		})
	}
}
