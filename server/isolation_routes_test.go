package server

import (
	"maps"
	"slices"
	"testing"
	"time"
)

// TestRoutesLostOnlyWhileRunning: a route that closes while the node runs on
// time counts its node lost at once (a killed node's routes); routes found
// closed by a node waking from a pause (the others closed theirs to it while it
// slept) do not, until the node has run on time and seen them again; a node
// never routed is not lost. A woken node that took every peer for lost answered
// Kafka Metadata without leaders for partitions led by healthy nodes.
func TestRoutesLostOnlyWhileRunning(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := newIsolationWatch("a")
	both := map[string]bool{"b": true, "c": true}
	at := t0
	tick := func(routed map[string]bool) []string {
		for _, n := range []string{"b", "c"} {
			if routed[n] {
				w.answered(n, at)
			}
		}
		w.check(at, 3)
		return slices.Sorted(maps.Keys(w.routesLost(routed, at)))
	}
	for range 6 { // 3 s on time, both routed
		if lost := tick(both); len(lost) != 0 {
			t.Fatalf("at %v with every route up: lost %v", at.Sub(t0), lost)
		}
		at = at.Add(probeEvery)
	}
	// c is killed: its routes close between two checks.
	at = at.Add(probeEvery / 5)
	if lost := slices.Sorted(maps.Keys(w.routesLost(map[string]bool{"b": true}, at))); !slices.Equal(lost, []string{"c"}) {
		t.Fatalf("c's route closed while the node ran: lost %v, want [c]", lost)
	}
	at = at.Add(probeEvery)
	w.routesLost(both, at) // c restarted, routed again

	// Under load one check comes 1.5 s late; c's route closes right after it.
	// The node ran all along: c is lost. (Once only routes seen since the
	// checks came on time counted, and a Metadata answer after a kill in CI
	// named the killed node as leader.)
	at = at.Add(probeEvery)
	tick(both)
	at = at.Add(3 * probeEvery)
	if lost := tick(both); len(lost) != 0 {
		t.Fatalf("a late check with every route up: lost %v", lost)
	}
	at = at.Add(probeEvery / 5)
	if lost := slices.Sorted(maps.Keys(w.routesLost(map[string]bool{"b": true}, at))); !slices.Equal(lost, []string{"c"}) {
		t.Fatalf("c's route closed after a late check: lost %v, want [c]", lost)
	}
	at = at.Add(probeEvery)
	w.routesLost(both, at)

	// The check loop waits 5 s on JetStream (a peer shutting down) while the
	// process runs: the ticker marks the node alive meanwhile. c's route closes
	// during the wait, and the late check that ends it does not make the node
	// take itself for woken. (Once the checks' own gaps judged pauses, and in
	// CI a Metadata answer after such a wait named the closed node's
	// partitions' leader.)
	at = at.Add(probeEvery)
	tick(both)
	for range 10 { // c's route closes at some point; nothing asks
		at = at.Add(probeEvery)
		w.alive(at)
	}
	at = at.Add(probeEvery / 5)
	if lost := tick(map[string]bool{"b": true}); !slices.Equal(lost, []string{"c"}) {
		t.Fatalf("c's route closed while the checks waited and the node ran: lost %v, want [c]", lost)
	}
	at = at.Add(probeEvery)
	tick(both)

	// The node is paused for 10 s; the others close their routes to it.
	at = at.Add(10 * time.Second)
	if lost := slices.Sorted(maps.Keys(w.routesLost(nil, at))); len(lost) != 0 {
		t.Fatalf("woken, before its first check: lost %v, want none", lost)
	}
	if lost := tick(nil); len(lost) != 0 {
		t.Fatalf("woken, at its first check with no route back yet: lost %v, want none", lost)
	}
	at = at.Add(probeEvery)
	if lost := tick(map[string]bool{"b": true}); len(lost) != 0 {
		t.Fatalf("woken, b routed again, c not yet: lost %v, want none", lost)
	}
	at = at.Add(probeEvery)
	if lost := tick(map[string]bool{"b": true}); len(lost) != 0 {
		t.Fatalf("woken, c not routed yet: lost %v, want none (never seen since the wake)", lost)
	}
	// Once b is seen after the wake, its route closing counts again.
	at = at.Add(probeEvery / 5)
	if lost := slices.Sorted(maps.Keys(w.routesLost(nil, at))); !slices.Equal(lost, []string{"b"}) {
		t.Fatalf("b's route closed after the node ran on time again: lost %v, want [b]", lost)
	}
}

// TestRouteLostOfNodeNeverHeard: a node killed before its first answer to this
// node's probes reached it (a cluster just started, or under load) is lost by
// its route alone. Kafka's lost-node rule looked only at nodes that had
// answered once, and a Metadata answer after such a kill waited on JetStream's
// view for its full 5 s (TestKafkaMetadataWaitCutWhileNodeLost failed in CI).
func TestRouteLostOfNodeNeverHeard(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := newIsolationWatch("a")
	both := map[string]bool{"b": true, "c": true}
	for range 4 { // c's answers have not arrived yet
		w.answered("b", at)
		w.check(at, 3)
		w.routesLost(both, at)
		at = at.Add(probeEvery)
	}
	at = at.Add(probeEvery / 5)
	routed := map[string]bool{"b": true} // c is killed
	l := lostNodes{self: "a", clustered: true, routed: routed, probes: w, at: at}
	l.routeLost = w.routesLost(routed, at)
	if !l.has("c") {
		t.Fatalf("c's route closed while the node ran: c not lost (lost by route: %v)", l.routeLost)
	}
	if !l.any() {
		t.Fatalf("c, never heard but routed, is lost: any() = false; the watch knows %v", slices.Sorted(slices.Values(w.nodes())))
	}
	if l.has("b") {
		t.Fatalf("b is routed and answering: lost")
	}
}
