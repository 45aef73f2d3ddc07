package server_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

// TestWriterDirectSubject sends produce requests to a partition's writer on one
// node (semantics.WriterDirectSubject), as a producer does after an election: the
// leader's writer appends them; a node that runs no writer for the partition has
// no responder; and the old leader's writer, asked right after its node stepped
// down and before its manager stopped it, answers NOT_LEADER and stores nothing,
// as the queue subject's door does once it finds its node no longer leads.
func TestWriterDirectSubject(t *testing.T) {
	t.Parallel()
	const topic = "direct"
	nodes, c, ctx := clusterWithTopic(t, topic)
	stream := semantics.StreamName(topic, 0)
	nc := c.Conn()

	// Through the queue subject first, until the partition's writer runs.
	for ctx.Err() == nil {
		m, err := nc.Request(semantics.WriterSubject(topic, 0), buildBatch(t, semantics.NoProducer, "a"), time.Second)
		if err == nil {
			r, perr := semantics.ParseProduceReply(m.Data)
			if perr != nil {
				t.Fatal(perr)
			}
			if r.Err() == nil {
				if r.BaseOffset != 0 {
					t.Fatalf("first append at offset %d, want 0", r.BaseOffset)
				}
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	leader, follower := -1, -1
	for i, n := range nodes {
		if n.NATSServer().JetStreamIsStreamLeader("$G", stream) {
			leader = i
		} else {
			follower = i
		}
	}
	if leader < 0 || follower < 0 {
		t.Fatalf("leader %d, follower %d", leader, follower)
	}

	// direct sends v to the writer on node i: its offset, or the error.
	direct := func(i int, v string) (int64, error) {
		t.Helper()
		m, err := nc.Request(semantics.WriterDirectSubject(topic, 0, nodes[i].Name()), buildBatch(t, semantics.NoProducer, v), 5*time.Second)
		if err != nil {
			return -1, err
		}
		r, err := semantics.ParseProduceReply(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		return r.BaseOffset, r.Err()
	}
	if off, err := direct(leader, "b"); err != nil || off != 1 {
		t.Fatalf("direct to the leader %s: offset %d, %v; want 1", nodes[leader].Name(), off, err)
	}
	if _, err := direct(follower, "x"); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("direct to the follower %s: %v, want no responders", nodes[follower].Name(), err)
	}

	// The stream steps down behind the writer's back (JetStream's API, not qxd's
	// hand-off, which stops the writer first); once the node knows, the writer
	// that still runs there must refuse.
	if err := nodes[leader].NATSServer().JetStreamStepdownStream("$G", stream); err != nil {
		t.Fatal(err)
	}
	for nodes[leader].NATSServer().JetStreamIsStreamLeader("$G", stream) {
		time.Sleep(100 * time.Microsecond)
	}
	off, err := direct(leader, "stale")
	switch {
	case errors.Is(err, semantics.ErrNotLeader):
		t.Logf("the old leader's writer answered: %v", err)
	case errors.Is(err, nats.ErrNoResponders):
		t.Logf("the old leader's writer had stopped already (no responders): the refusal was not exercised")
	default:
		t.Fatalf("direct to the old leader %s after its step-down: offset %d, %v; want NOT_LEADER", nodes[leader].Name(), off, err)
	}

	// The new leader's writer continues at offset 2: nothing was stored by the
	// old one.
	for ctx.Err() == nil {
		m, err := nc.Request(semantics.WriterSubject(topic, 0), buildBatch(t, semantics.NoProducer, "c"), time.Second)
		if err == nil {
			r, perr := semantics.ParseProduceReply(m.Data)
			if perr != nil {
				t.Fatal(perr)
			}
			if r.Err() == nil {
				if r.BaseOffset != 2 {
					t.Fatalf("first append after the step-down at offset %d, want 2", r.BaseOffset)
				}
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(ctx.Err())
}
