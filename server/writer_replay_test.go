package server_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// keyedBatch is a one-record batch of producer pi with key k and value v (nil: a
// tombstone), at base offset base.
func keyedBatch(t *testing.T, pi semantics.ProducerInfo, k string, v []byte, base int64) []byte {
	t.Helper()
	var b semantics.BatchBuilder
	b.Append(&semantics.Record{Key: []byte(k), Value: v, Timestamp: time.UnixMilli(1700000000000)})
	out, err := b.Build(nil, pi, semantics.CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	semantics.SetBaseOffset(out, base)
	return out
}

// TestWriterReplayStoreMatchesNATS reads a partition's log as a writer's load
// replays it, from the leader's store in process and through NATS, from every
// sequence on: both must give the same messages (sequence, subject, bytes,
// stored time), also on a compacted topic whose log has holes (replaced keys, a
// tombstone) and from a sequence inside a hole; and the store reads must be
// counted as such.
func TestWriterReplayStoreMatchesNATS(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	ws := n.Writers()
	for _, tc := range []struct {
		name    string
		cfg     qxd.TopicConfig
		records []string // keys; "-k" a tombstone of k
	}{
		{"plain", qxd.TopicConfig{}, []string{"a", "b", "a", "c", "b", "d"}},
		{"compacted", qxd.TopicConfig{Compact: true}, []string{"a", "b", "a", "c", "-b", "d", "a"}},
	} {
		topic := "rpeq-" + tc.name
		qxdtest.CreateTopic(t, c, topic, tc.cfg)
		for i, k := range tc.records {
			v := []byte("v")
			if k[0] == '-' {
				k, v = k[1:], nil
			}
			if _, err := appendRetrying(ctx, ws, topic, 0, keyedBatch(t, semantics.ProducerInfo{ID: 5, BaseSequence: int32(i)}, k, v, 0)); err != nil {
				t.Fatalf("%s: append %d: %v", topic, i, err)
			}
		}
		last := uint64(len(tc.records))
		for from := uint64(1); from <= last; from++ {
			before := n.WriterReplays()
			local, err := n.WriterReplay(ctx, topic, 0, from, true)
			if err != nil {
				t.Fatalf("%s from %d, store: %v", topic, from, err)
			}
			after := n.WriterReplays()
			remote, err := n.WriterReplay(ctx, topic, 0, from, false)
			if err != nil {
				t.Fatalf("%s from %d, NATS: %v", topic, from, err)
			}
			if got := after.Store - before.Store; got != int64(len(local)) || after.NATS != before.NATS {
				t.Fatalf("%s from %d: %d messages replayed, counted %d from the store and %d through NATS: the store was not read",
					topic, from, len(local), got, after.NATS-before.NATS)
			}
			if len(local) == 0 || len(local) != len(remote) {
				t.Fatalf("%s from %d: %d messages from the store, %d through NATS", topic, from, len(local), len(remote))
			}
			for i, l := range local {
				r := remote[i]
				if l.Seq != r.Seq || l.Subject != r.Subject || !bytes.Equal(l.Data, r.Data) || !l.Time.Equal(r.Time) {
					t.Fatalf("%s from %d, message %d: store seq %d subject %q time %v (%d bytes), NATS seq %d subject %q time %v (%d bytes)",
						topic, from, i, l.Seq, l.Subject, l.Time, len(l.Data), r.Seq, r.Subject, r.Time, len(r.Data))
				}
			}
		}
	}
}

// TestWriterLoadReplaysLeaderStore stores idempotent batches behind a writer's
// back, on a replicated topic and on a compacted one (whose log then has a hole),
// and moves the partitions' leadership: the new leader's writer replays them
// from its own store, not through NATS, and rebuilds the same state a replay
// through NATS does: the last batch sent again is a duplicate answered with its
// offset, a sequence past the next is refused, and the next one lands at the
// next offset. Its stream state, checkpoint and abort markers it reads from its
// store as well, with no JetStream API request.
func TestWriterLoadReplaysLeaderStore(t *testing.T) {
	t.Parallel()
	const plain, compact = "rpl", "rplc"
	nodes, c, ctx := clusterWithTopic(t, plain)
	qxdtest.CreateTopic(t, c, compact, qxd.TopicConfig{Partitions: 1, Replicas: 3, Compact: true})
	js := qxdtest.JetStream(t, nodes[0])
	const pid = 21
	pi := func(seq int) semantics.ProducerInfo { return semantics.ProducerInfo{ID: pid, BaseSequence: int32(seq)} }
	// What each topic holds behind its writer's back, after the writer's own
	// first batch (pid's sequence 0 at offset 0): the keys of batches 1, 2, ...
	tails := map[string][]string{plain: {"a", "b", "c", "d", "e", "f", "g", "h"}, compact: {"a", "b", "a", "c", "b", "d"}}
	// The tail's batches still stored: each of them a load replays.
	held := map[string]int64{plain: 8, compact: 4}
	for _, topic := range []string{plain, compact} {
		stream := semantics.StreamName(topic, 0)
		leader := nodeNamed(nodes, streamLeader(nodes, stream))
		if leader == nil {
			t.Fatalf("%s has no leader", stream)
		}
		if r, err := appendRetrying(ctx, leader.Writers(), topic, 0, keyedBatch(t, pi(0), "first", []byte("v"), 0)); err != nil || r.BaseOffset != 0 {
			t.Fatalf("%s: first batch at %d, %v", topic, r.BaseOffset, err)
		}
		for i, k := range tails[topic] {
			subject := semantics.BatchSubject(topic, 0)
			if topic == compact {
				subject = semantics.KeySubject(topic, 0, []byte(k))
			}
			if _, err := js.Publish(ctx, subject, keyedBatch(t, pi(1+i), k, []byte("v"), int64(1+i))); err != nil {
				t.Fatal(err)
			}
		}
		// Another node takes the leadership over.
		var to *server.Node
		for _, n := range nodes {
			if n != leader {
				to = n
				break
			}
		}
		before, lookups := to.WriterReplays(), to.WriterLoadLookups()
		if err := to.HandOffVia(ctx, leader.Name(), stream, to.Name()); err != nil {
			t.Fatalf("hand %s off from %s to %s: %v", stream, leader.Name(), to.Name(), err)
		}
		for deadline := time.Now().Add(20 * time.Second); streamLeader(nodes, stream) != to.Name(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s is led by %q after its hand-off to %s", stream, streamLeader(nodes, stream), to.Name())
			}
		}
		n := len(tails[topic])
		k := tails[topic][n-1]
		r, err := appendRetrying(ctx, to.Writers(), topic, 0, keyedBatch(t, pi(n), k, []byte("v"), 0))
		if err != nil || r.BaseOffset != int64(n) {
			t.Fatalf("%s: the last batch again after the leader change: offset %d, %v (want the duplicate's %d)", topic, r.BaseOffset, err, n)
		}
		if _, err := to.Writers().Append(ctx, topic, 0, keyedBatch(t, pi(n+2), "z", []byte("v"), 0)); !errors.Is(err, semantics.ErrOutOfOrderSequence) {
			t.Fatalf("%s: a sequence past the next after the leader change: %v (want %v)", topic, err, semantics.ErrOutOfOrderSequence)
		}
		if r, err := to.Writers().Append(ctx, topic, 0, keyedBatch(t, pi(n+1), "z", []byte("v"), 0)); err != nil || r.BaseOffset != int64(n+1) {
			t.Fatalf("%s: the next batch after the leader change: offset %d, %v (want %d)", topic, r.BaseOffset, err, n+1)
		}
		after := to.WriterReplays()
		if after.Store-before.Store < held[topic] || after.NATS != before.NATS {
			t.Fatalf("%s: the new leader's load replayed %d batches from its store and %d through NATS (want the tail from the store, none through NATS)",
				topic, after.Store-before.Store, after.NATS-before.NATS)
		}
		// Its stream state, stored checkpoint (a compacted topic has none) and
		// abort markers: from its store too.
		want := int64(3)
		if topic == compact {
			want = 2
		}
		if l := to.WriterLoadLookups(); l.Store-lookups.Store < want || l.NATS != lookups.NATS {
			t.Fatalf("%s: the new leader's load read its stream's state, checkpoint and abort markers %d times from its store and %d times with requests (want %d from the store, none with requests)",
				topic, l.Store-lookups.Store, l.NATS-lookups.NATS, want)
		}
		t.Logf("%s: the new leader replayed %d batches from its store", topic, after.Store-before.Store)
	}
}

// nodeNamed is the node of nodes named name, or nil.
func nodeNamed(nodes []*server.Node, name string) *server.Node {
	for _, n := range nodes {
		if n.Name() == name {
			return n
		}
	}
	return nil
}
