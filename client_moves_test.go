package qxd

import (
	"testing"
	"time"
)

// TestMoves checks when a client told to move by its node (NATS's lame-duck
// notice: the node stops, or is cut off from its cluster) moves: when its server
// list holds another node, and not for movedLately after a move ended back on a
// node that had told it to go — so that clients of a cluster without a majority
// go round its nodes at most once — unless that node served the client for
// toldOnConnect before it told it again (a new fault).
func TestMoves(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	abc := []string{"a", "b", "c"}
	type step struct {
		told      string // a server tells the client to move
		connected string // or the client connects to a server
		at        time.Time
		pool      []string
		want      bool // the move decided at a told step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "a healthy node to go to", steps: []step{
			{told: "a", at: at(0), pool: abc, want: true},
			{connected: "b", at: at(1)},
		}},
		{name: "the only node known", steps: []step{
			{told: "a", at: at(0), pool: []string{"a"}, want: false},
			{told: "a", at: at(60), pool: []string{"a"}, want: false},
		}},
		{name: "every node cut off: once round, then stay", steps: []step{
			{told: "a", at: at(0), pool: abc, want: true},
			{connected: "b", at: at(1)},
			{told: "b", at: at(2), pool: abc, want: true},
			{connected: "c", at: at(3)},
			{told: "c", at: at(4), pool: abc, want: true},
			{connected: "a", at: at(5)},
			{told: "a", at: at(6), pool: abc, want: false},
			{told: "a", at: at(9), pool: abc, want: false},
			{told: "a", at: at(36), pool: abc, want: true},
		}},
		{name: "served by the node it came back to, then told again: a new fault", steps: []step{
			{told: "a", at: at(0), pool: abc, want: true},
			{connected: "b", at: at(1)},
			{told: "b", at: at(2), pool: abc, want: true},
			{connected: "a", at: at(3)}, // a had told it to go 3 s ago: stay on a notice at once
			{told: "a", at: at(4), pool: abc, want: false},
			{told: "a", at: at(14), pool: abc, want: true}, // a served it 11 s, then was cut off again
		}},
		{name: "back on the node that told it to go", steps: []step{
			{told: "a", at: at(0), pool: []string{"a", "b"}, want: true},
			{connected: "a", at: at(1)}, // b refused the connection
			{told: "a", at: at(2), pool: []string{"a", "b"}, want: false},
			{told: "a", at: at(40), pool: []string{"a", "b"}, want: true},
		}},
		{name: "nodes stopped one after the other", steps: []step{
			{told: "a", at: at(0), pool: []string{"a", "b"}, want: true},
			{connected: "b", at: at(1)},
			{told: "b", at: at(10), pool: []string{"a", "b"}, want: true},
			{connected: "a", at: at(45)},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var m moves
			for i, s := range tc.steps {
				if s.connected != "" {
					m.connected(s.connected, s.at)
					continue
				}
				if got := m.toldToMove(s.told, s.pool, s.at); got != s.want {
					t.Fatalf("step %d: told by %s at %v: move = %v, want %v", i, s.told, s.at.Sub(t0), got, s.want)
				}
			}
		})
	}
}
