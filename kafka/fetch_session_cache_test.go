package kafka

import (
	"math"
	"testing"
	"testing/synctest"
	"time"
)

// sessionParts are n partitions of topic t, as a fetch names them.
func sessionParts(n int) []*sessionPart {
	var parts []*sessionPart
	for i := range n {
		parts = append(parts, &sessionPart{key: sessionKey{topic: "t", partition: int32(i)}, highWatermark: -1, lastStable: -1, logStart: -1})
	}
	return parts
}

// TestFetchSessionEviction: a full cache makes room as Kafka's does: for a
// session idle past the eviction time (the least recently used), or, when none
// is, for a larger session in place of the smallest one older than the
// eviction time; else the new session is not made.
func TestFetchSessionEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := newFetchSessions(2, 120*time.Second)
		epochs := map[int32]int32{}
		create := func(n int) int32 {
			t.Helper()
			id := fs.create("alice", false, sessionParts(n))
			if id != 0 {
				epochs[id] = 1
			}
			return id
		}
		use := func(name string, id int32, want int16) {
			t.Helper()
			s, _, code := fs.update(id, epochs[id], "alice", false, nil, nil)
			if code != want {
				t.Fatalf("%s: code %d, want %d", name, code, want)
			}
			if s != nil {
				epochs[id]++
			}
		}
		a, b := create(1), create(2)
		if a == 0 || b == 0 || a == b {
			t.Fatalf("sessions %d and %d", a, b)
		}
		if c := create(5); c != 0 {
			t.Fatal("a full cache of new sessions made room")
		}

		// b idles past the eviction time, a does not: b goes.
		time.Sleep(60 * time.Second)
		use("a", a, 0)
		time.Sleep(61 * time.Second)
		c := create(1)
		if c == 0 {
			t.Fatal("no room made for c by the idle b")
		}
		use("b evicted", b, codeFetchSessionIDNotFound)
		use("a kept", a, 0)

		// None idle: a larger session takes the place of the smallest one older
		// than the eviction time (a, not the young c); one as small does not.
		time.Sleep(100 * time.Second)
		use("a", a, 0)
		use("c", c, 0)
		if d := create(1); d != 0 {
			t.Fatal("a session as small as a evicted it")
		}
		d := create(2)
		if d == 0 {
			t.Fatal("a larger session did not evict the old small one")
		}
		use("a evicted", a, codeFetchSessionIDNotFound)
		use("c kept", c, 0)
		use("d", d, 0)
		if fs.len() != 2 {
			t.Fatalf("%d sessions, want 2", fs.len())
		}
	})
}

// TestFetchSessionPrincipal: a session is its principal's: another's fetch
// does not find it nor close it.
func TestFetchSessionPrincipal(t *testing.T) {
	fs := newFetchSessions(10, time.Minute)
	id := fs.create("alice", true, sessionParts(1))
	if _, _, code := fs.update(id, 1, "bob", true, nil, nil); code != codeFetchSessionIDNotFound {
		t.Fatalf("bob's fetch in alice's session: code %d, want FETCH_SESSION_ID_NOT_FOUND", code)
	}
	fs.remove(id, "bob")
	if _, _, code := fs.update(id, 1, "alice", true, nil, nil); code != 0 {
		t.Fatalf("alice's session after bob closed it: code %d", code)
	}
}

func TestNextEpoch(t *testing.T) {
	for _, tc := range []struct{ e, want int32 }{{0, 1}, {1, 2}, {math.MaxInt32, 1}, {-1, -1}} {
		if got := nextEpoch(tc.e); got != tc.want {
			t.Errorf("nextEpoch(%d) = %d, want %d", tc.e, got, tc.want)
		}
	}
}
