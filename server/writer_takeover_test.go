package server_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

// TestWriterTakeoverAsksNoReplica moves a partition's leadership and watches the
// stream's direct gets while the new leader's writer loads its state. A direct
// get reaches a replica the NATS server picks at random, and one cut off from the
// cluster still takes its share of them, unanswered, until the nodes give up on
// its routes (6–8 s after the cut): a new leader's writer that loaded with direct
// gets waited out the read timeout (5 s) for each one that went there, after
// JetStream had elected the leader in time (the network cut drill: answers 5 s
// after the election). The writer runs on the stream leader, which answers the
// load's reads itself: no direct get may be sent before the first produce after
// the election is answered, at the next offset.
func TestWriterTakeoverAsksNoReplica(t *testing.T) {
	t.Parallel()
	const topic = "takeover"
	nodes, c, ctx := clusterWithTopic(t, topic)
	stream := semantics.StreamName(topic, 0)
	nc := c.Conn()

	// produce sends one batch until a writer answers it, each attempt bounded.
	produce := func(v string) int64 {
		t.Helper()
		var lastErr error
		for ctx.Err() == nil {
			m, err := nc.Request(semantics.WriterSubject(topic, 0), buildBatch(t, semantics.NoProducer, v), time.Second)
			if err == nil {
				r, perr := semantics.ParseProduceReply(m.Data)
				if perr != nil {
					t.Fatal(perr)
				}
				if err = r.Err(); err == nil {
					return r.BaseOffset
				}
			}
			lastErr = err
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("produce %s: %v", v, lastErr)
		return 0
	}
	for i, v := range []string{"a", "b", "c"} {
		if off := produce(v); off != int64(i) {
			t.Fatalf("append %s: offset %d, want %d", v, off, i)
		}
	}

	leader := -1
	for i, n := range nodes {
		if n.NATSServer().JetStreamIsStreamLeader("$G", stream) {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("the partition's stream has no leader")
	}
	// Every direct get of the stream, on each node (a plain subscription sees
	// them all, beside the replicas that answer).
	var asked atomic.Int32
	for _, n := range nodes {
		sc, err := nats.Connect(n.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sc.Close)
		if _, err := sc.Subscribe(semantics.Subject(semantics.JSDirectGetPrefix, stream), func(*nats.Msg) { asked.Add(1) }); err != nil {
			t.Fatal(err)
		}
		if err := sc.Flush(); err != nil {
			t.Fatal(err)
		}
	}

	if err := nodes[leader].NATSServer().JetStreamStepdownStream("$G", stream); err != nil {
		t.Fatal(err)
	}
	if off := produce("d"); off != 3 {
		t.Errorf("the first append after the election got offset %d, want 3", off)
	}
	if n := asked.Load(); n > 0 {
		t.Errorf("the new leader's writer sent %d direct gets while it loaded; want none (a replica cut off from the cluster takes its share of them and never answers)", n)
	}
}
