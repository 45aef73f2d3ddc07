package kafka

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestFetchSessionStats: the cache's figures follow its sessions: made, grown
// and shrunk by incremental fetches, emptied, closed and evicted.
func TestFetchSessionStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := newFetchSessions(2, 120*time.Second)
		want := func(name string, sessions, partitions int, evictions uint64) {
			t.Helper()
			if got := fs.stats(); got != (FetchSessionStats{Sessions: sessions, Partitions: partitions, Evictions: evictions}) {
				t.Fatalf("%s: %+v, want %d sessions, %d partitions, %d evictions", name, got, sessions, partitions, evictions)
			}
		}
		want("empty", 0, 0, 0)
		a := fs.create("alice", false, sessionParts(3))
		b := fs.create("alice", false, sessionParts(2))
		want("two made", 2, 5, 0)
		if fs.create("alice", false, sessionParts(4)) != 0 {
			t.Fatal("a full cache made room")
		}
		want("none made in a full cache", 2, 5, 0)

		// a grows by one partition, then forgets two.
		more := sessionParts(4)[3:]
		if s, _, code := fs.update(a, 1, "alice", false, more, nil); s == nil || code != 0 {
			t.Fatalf("update a: code %d", code)
		}
		want("a grown", 2, 6, 0)
		if s, _, code := fs.update(a, 2, "alice", false, nil, []sessionKey{{topic: "t", partition: 0}, {topic: "t", partition: 1}}); s == nil || code != 0 {
			t.Fatalf("update a: code %d", code)
		}
		want("a shrunk", 2, 4, 0)
		// A refused update changes nothing.
		if _, _, code := fs.update(a, 9, "alice", false, sessionParts(5), nil); code != codeInvalidFetchSessionEpoch {
			t.Fatalf("update a at a wrong epoch: code %d", code)
		}
		want("refused update", 2, 4, 0)

		// b forgets all it has: closed.
		if s, _, _ := fs.update(b, 1, "alice", false, nil, []sessionKey{{topic: "t", partition: 0}, {topic: "t", partition: 1}}); s != nil {
			t.Fatal("an emptied session was kept")
		}
		want("b emptied", 1, 2, 0)

		// c fills the cache; idle past the eviction time, the older goes for d.
		c := fs.create("alice", false, sessionParts(1))
		want("c made", 2, 3, 0)
		time.Sleep(121 * time.Second)
		if fs.update(c, 1, "alice", false, nil, nil); fs.create("alice", false, sessionParts(5)) == 0 {
			t.Fatal("no room made for d")
		}
		want("a evicted for d", 2, 6, 1)

		// A full fetch closing c (another principal's id closes nothing).
		fs.remove(c, "bob")
		want("bob closes nothing", 2, 6, 1)
		fs.remove(c, "alice")
		want("c closed", 1, 5, 1)
	})
}
