package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestWriterLoadsWithoutMetaLeader moves a partition's writer while JetStream's
// meta group has no leader but the partition's stream has one. JetStream then
// refuses every leader message get (error 10008, "JetStream system temporarily
// unavailable") from every node, so a writer that loads with them cannot start
// until the meta group elects again. The writer must load from the stream leader's
// state anyway: the next produce is answered soon after the stream's new leader is
// elected, with the next offset (none given twice), and the idempotent producer's
// earlier batches are still known.
//
// Five nodes, a three-replica partition: three nodes stop (the partition keeps two
// replicas, a quorum; the meta group keeps two of five, none), and the stream's
// leader hands its leadership to the other survivor.
func TestWriterLoadsWithoutMetaLeader(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 5))
	ctx := qxdtest.Context(t, 120*time.Second)
	c := qxdtest.ConnectCluster(t, nodes)
	const topic = "metaless"
	stream := semantics.StreamName(topic, 0)
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	byName := map[string]*server.Node{}
	for _, n := range nodes {
		byName[n.Name()] = n
	}
	js, _ := c.Conn().JetStream()
	var leader, follower *server.Node
	for ctx.Err() == nil {
		st, err := js.StreamInfo(stream)
		if err == nil && st.Cluster != nil && st.Cluster.Leader != "" && len(st.Cluster.Replicas) == 2 {
			leader, follower = byName[st.Cluster.Leader], byName[st.Cluster.Replicas[0].Name]
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if leader == nil || follower == nil {
		t.Fatal("no leader and replicas for the partition's stream")
	}
	nc, err := nats.Connect(leader.ClientURL() + "," + follower.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	pid := int64(91)
	batch := func(seq int32, v string) []byte {
		return buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 0, BaseSequence: seq}, v)
	}
	// produce sends one batch until a writer answers it, or until deadline.
	produce := func(b []byte, deadline time.Time) (int64, error) {
		var lastErr error
		for time.Now().Before(deadline) && ctx.Err() == nil {
			m, err := nc.Request(semantics.WriterSubject(topic, 0), b, time.Second)
			if err != nil {
				lastErr = err
				time.Sleep(20 * time.Millisecond)
				continue
			}
			r, err := semantics.ParseProduceReply(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Err(); err != nil {
				if !semantics.IsRetriable(err) {
					t.Fatalf("produce: %v (want a retriable error while the writer moves)", err)
				}
				lastErr = err
				time.Sleep(20 * time.Millisecond)
				continue
			}
			return r.BaseOffset, nil
		}
		return -1, lastErr
	}
	for i, v := range []string{"a", "b", "c"} {
		if off, err := produce(batch(int32(i), v), time.Now().Add(30*time.Second)); off != int64(i) {
			t.Fatalf("append %s: offset %d, %v", v, off, err)
		}
	}

	var wg sync.WaitGroup
	for _, n := range nodes {
		if n != leader && n != follower {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.NATSServer().Shutdown()
			}()
		}
	}
	wg.Wait()

	// Wait until both survivors know the meta group has no leader (they notice
	// the lost meta leader or quorum within seconds), and JetStream refuses
	// leader message gets for it.
	metaLeaderless := func(n *server.Node) bool {
		rz := n.NATSServer().Raftz(&natsserver.RaftzOptions{GroupFilter: "_meta_"})
		if rz == nil {
			return false
		}
		for _, groups := range *rz {
			if g, ok := groups["_meta_"]; ok {
				return g.Leader == ""
			}
		}
		return false
	}
	refused := false
	for !refused && ctx.Err() == nil {
		if !metaLeaderless(leader) || !metaLeaderless(follower) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		req, _ := json.Marshal(map[string]uint64{"seq": 1})
		m, err := nc.Request(semantics.Subject(semantics.JSStreamMsgGetPrefix, stream), req, 2*time.Second)
		if err == nil {
			var out struct {
				Error *struct {
					ErrCode int `json:"err_code"`
				} `json:"error"`
			}
			refused = json.Unmarshal(m.Data, &out) == nil && out.Error != nil && out.Error.ErrCode == 10008
		}
		if !refused {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !refused {
		t.Fatal("the meta group never lost its leader")
	}
	// The partition's stream still has its leader, and its writer takes appends.
	if off, err := produce(batch(3, "d"), time.Now().Add(30*time.Second)); off != 3 {
		t.Fatalf("append d with no meta leader: offset %d, %v", off, err)
	}

	// Move the stream's leadership to the other survivor: its writer loads there.
	if err := leader.NATSServer().JetStreamStepdownStream("$G", stream); err != nil {
		t.Fatal(err)
	}
	for !follower.NATSServer().JetStreamIsStreamLeader("$G", stream) {
		if ctx.Err() != nil {
			t.Fatal("the partition's stream elected no new leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
	elected := time.Now()
	off, err := produce(batch(4, "e"), elected.Add(20*time.Second))
	took := time.Since(elected)
	if off != 4 {
		t.Fatalf("append e after the stream's new leader %s was elected with no meta leader: offset %d after %v, %v (want 4)",
			follower.Name(), off, took, err)
	}
	t.Logf("the new writer took an append %v after the stream's leader was elected", took)
	// Within about a second: the writer manager checks leadership every 250 ms, and
	// a loaded machine (two test runs on two cores) adds to it.
	if took > 2*time.Second {
		t.Fatalf("the new writer took appends only %v after the stream's leader was elected (want within a few seconds)", took)
	}
	// The producer's state came back too: a resend of an earlier batch is answered
	// with its offset, not stored again.
	if off, err := produce(batch(2, "c"), time.Now().Add(10*time.Second)); off != 2 {
		t.Fatalf("resend of batch 2: offset %d, %v (want 2)", off, err)
	}
	if off, err := produce(batch(5, "f"), time.Now().Add(10*time.Second)); off != 5 {
		t.Fatalf("append f: offset %d, %v (want 5)", off, err)
	}

	// The reads the load made, the meta group still without a leader: every
	// stored batch, from the leader's state, by subject and by sequence.
	r := partition.NewReader(nc, topic, 0, false)
	st, err := r.StreamInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetFor(ctx, st.FirstSeq, semantics.BatchSubject(topic, 0)); !errors.Is(err, partition.ErrNoMetaLeader) {
		t.Fatalf("leader message get: %v (want ErrNoMetaLeader: the meta group still has no leader)", err)
	}
	stored := 0
	for _, subject := range []string{semantics.BatchSubject(topic, 0), semantics.CheckpointSubject(topic, 0)} {
		ms, err := r.AllOn(ctx, subject, st)
		if err != nil {
			t.Fatalf("messages on %s: %v", subject, err)
		}
		for _, m := range ms {
			at, err := r.GetAt(ctx, m.Seq)
			if err != nil || !bytes.Equal(at.Data, m.Data) || at.Subject != subject {
				t.Fatalf("sequence %d: %s %q, %v (want %s %q)", m.Seq, at.Subject, at.Data, err, subject, m.Data)
			}
		}
		stored += len(ms)
	}
	if uint64(stored) != st.Msgs {
		t.Fatalf("read %d messages by subject, the leader holds %d", stored, st.Msgs)
	}
	last, err := r.GetAt(ctx, st.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := semantics.PeekBatchHeader(last.Data); err != nil || h.BaseOffset != 5 {
		t.Fatalf("last batch: base offset %d, %v (want 5)", h.BaseOffset, err)
	}
	if m, err := r.GetRecentFor(ctx, semantics.CheckpointSubject(topic, 0)); err != nil && !errors.Is(err, semantics.ErrNoBatch) || err == nil && m.Seq > st.LastSeq {
		t.Fatalf("latest checkpoint: sequence %d, %v", m.Seq, err)
	}
}
