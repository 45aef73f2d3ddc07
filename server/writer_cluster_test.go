package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// clusterWithTopic starts a 3-node cluster with a one-partition, three-replica topic
// and connects a client to every node.
func clusterWithTopic(t *testing.T, topic string) ([]*server.Node, *qxd.Client, context.Context) {
	t.Helper()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 60*time.Second)
	c := qxdtest.ConnectCluster(t, nodes)
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	return nodes, c, ctx
}

// TestWriterReplicatedStreamSurvivesForeignAppend stores a batch behind the writer's
// back on a replicated partition, as a writer that lost leadership could. The writer's
// next append must be refused before it is replicated, the writer must reload, and the
// stream must keep taking appends at dense offsets. (JetStream checks an expected last
// message id only when the replicas apply an entry, and a mismatch there stops the
// stream on every replica; the writer must not rely on it for replicated streams.)
func TestWriterReplicatedStreamSurvivesForeignAppend(t *testing.T) {
	t.Parallel()
	_, c, ctx := clusterWithTopic(t, "chain3")
	nc := c.Conn()

	produce := func(v string) (int64, error) {
		t.Helper()
		var lastErr error
		for ctx.Err() == nil {
			m, err := nc.Request(semantics.WriterSubject("chain3", 0), buildBatch(t, semantics.NoProducer, v), 5*time.Second)
			if err != nil {
				lastErr = err
				time.Sleep(100 * time.Millisecond)
				continue
			}
			r, err := semantics.ParseProduceReply(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			return r.BaseOffset, r.Err()
		}
		t.Fatalf("produce %s: %v", v, lastErr)
		return 0, nil
	}
	for i, v := range []string{"a", "b"} {
		if off, err := produce(v); err != nil || off != int64(i) {
			t.Fatalf("append %s: offset %d, %v", v, off, err)
		}
	}
	foreign := buildBatch(t, semantics.NoProducer, "x")
	semantics.SetBaseOffset(foreign, 2)
	js, _ := nc.JetStream()
	if _, err := js.Publish(semantics.BatchSubject("chain3", 0), foreign); err != nil {
		t.Fatal(err)
	}
	// The writer still believes the log ends after "b": its append must be refused,
	// with an error that tells the producer to retry.
	if _, err := produce("c"); err == nil || !semantics.IsRetriable(err) {
		t.Fatalf("append behind a foreign one: %v (want a retriable refusal)", err)
	}
	// Then it reloads and goes on behind the foreign batch.
	var got []int64
	for _, v := range []string{"d", "e"} {
		off, err := produce(v)
		for err != nil && semantics.IsRetriable(err) && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			off, err = produce(v)
		}
		if err != nil {
			t.Fatalf("append %s after the reload: %v (the stream stopped taking writes?)", v, err)
		}
		got = append(got, off)
	}
	if got[0] != 3 || got[1] != 4 {
		t.Fatalf("offsets after the reload %v, want [3 4]", got)
	}
	st, err := js.StreamInfo(semantics.StreamName("chain3", 0))
	if err != nil {
		t.Fatal(err)
	}
	if st.State.Msgs != 5 || st.Cluster == nil || st.Cluster.Leader == "" {
		t.Fatalf("stream state %+v, cluster %+v: want 5 batches and a leader", st.State, st.Cluster)
	}
}

// TestHandOffStopsWriterFirst moves a replicated partition's leadership as leader
// balancing does and checks that the partition keeps taking appends with dense
// offsets, served by the new leader's writer.
func TestHandOffStopsWriterFirst(t *testing.T) {
	t.Parallel()
	nodes, c, ctx := clusterWithTopic(t, "handoff")
	stream := semantics.StreamName("handoff", 0)
	js, _ := c.Conn().JetStream()
	leader := func() string {
		st, err := js.StreamInfo(stream)
		if err != nil || st.Cluster == nil {
			return ""
		}
		return st.Cluster.Leader
	}
	p, err := c.NewProducer(qxd.Linger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	var offs []int64
	send := func(n int) {
		for i := 0; i < n; i++ {
			r := &qxd.Record{Topic: "handoff", Value: []byte("v")}
			if err := p.ProduceSync(ctx, r); err != nil {
				t.Fatalf("produce: %v", err)
			}
			offs = append(offs, r.Offset)
		}
	}
	send(20)
	for round := 0; round < 3; round++ {
		from := leader()
		// Another node asks the leader to hand off, as leader balancing does.
		var by *server.Node
		var to string
		for _, n := range nodes {
			switch {
			case n.Name() == from:
			case by == nil:
				by = n
			default:
				to = n.Name()
			}
		}
		if err := by.HandOffVia(ctx, from, stream, to); err != nil {
			t.Fatalf("hand off %s from %s to %s: %v", stream, from, to, err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for l := leader(); (l == from || l == "") && time.Now().Before(deadline); l = leader() {
			time.Sleep(50 * time.Millisecond)
		}
		if l := leader(); l == from || l == "" {
			t.Fatalf("round %d: leader of %s is %q after the hand-off from %s", round, stream, l, from)
		}
		send(20)
	}
	for i, o := range offs {
		if o != int64(i) {
			t.Fatalf("offsets not dense across hand-offs: %v", offs)
		}
	}
}

// TestWriterRemembersLastBatchesAcrossRestart stores five batches of one idempotent
// producer, restarts the node (its writer checkpoints on the way down and loads on
// the way up), and resends each of them, as a producer whose requests were in
// flight does: every resend must be answered with the offsets the batch was stored
// at, not as a duplicate of unknown place, and nothing stored twice.
func TestWriterRemembersLastBatchesAcrossRestart(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "remember", qxd.TopicConfig{Partitions: 1})
	const pid = int64(77)
	var batches [][]byte
	for i := range 5 {
		b := buildBatch(t, semantics.ProducerInfo{ID: pid, BaseSequence: int32(2 * i)}, "x", "y")
		if off, err := produceRaw(t, c.Conn(), "remember", 0, b); err != nil || off != int64(2*i) {
			t.Fatalf("batch %d: offset %d, %v", i, off, err)
		}
		batches = append(batches, b)
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	n = qxdtest.StartNodeWith(t, cfg)
	c = qxdtest.Connect(t, n)
	for i, b := range batches {
		off, err := produceRaw(t, c.Conn(), "remember", 0, b)
		if err != nil || off != int64(2*i) {
			t.Fatalf("resend of batch %d after the restart: offset %d, %v; want offset %d", i, off, err, 2*i)
		}
	}
	d, err := c.Admin().DescribeTopic(ctx, "remember")
	if err != nil {
		t.Fatal(err)
	}
	if hw := d.Partitions[0].HighWatermark; hw != 10 {
		t.Fatalf("high watermark %d, want 10: a resend was stored again", hw)
	}
}
