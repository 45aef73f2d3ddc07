package server_test

import (
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestWriterReloadsWithoutCheckpointBucket takes the quorum of the shared
// checkpoint bucket (qxd_partitions) away while a partition's own stream stays healthy, then makes the partition's writer reload its state (a foreign append
// fences it). The writer must load from what its own stream holds: producing goes
// on within a second, at the right offset, and the idempotent producer's state
// survives the reload. A writer that waited for the bucket stalled the partition
// for its whole load timeout.
func TestWriterReloadsWithoutCheckpointBucket(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 90*time.Second)
	c, err := qxd.Connect(ctx, qxdtest.ClientURLs(nodes))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	const topic = "solo"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 1})
	js, _ := c.Conn().JetStream()
	var leader *server.Node
	for leader == nil && ctx.Err() == nil {
		if st, err := js.StreamInfo(semantics.StreamName(topic, 0)); err == nil && st.Cluster != nil {
			for _, n := range nodes {
				if n.Name() == st.Cluster.Leader {
					leader = n
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if leader == nil {
		t.Fatal("no leader for the partition's stream")
	}
	nc, err := nats.Connect(leader.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	pid := int64(77)
	batch := func(seq int32, v string) []byte {
		return buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 0, BaseSequence: seq}, v)
	}
	for i, v := range []string{"a", "b"} {
		if off, err := produceRaw(t, nc, topic, 0, batch(int32(i), v)); err != nil || off != int64(i) {
			t.Fatalf("append %s: offset %d, %v", v, off, err)
		}
	}

	// Stop the other two nodes abruptly: the buckets (three replicas) lose their
	// quorum, the partition (one replica, on the leader) does not.
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n != leader {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.NATSServer().Shutdown()
			}()
		}
	}
	wg.Wait()
	foreign := buildBatch(t, semantics.NoProducer, "x")
	semantics.SetBaseOffset(foreign, 2)
	if _, err := js.Publish(semantics.BatchSubject(topic, 0), foreign); err != nil {
		t.Fatalf("foreign append: %v", err)
	}
	start := time.Now()
	var got int64 = -1
	for got < 0 && time.Since(start) < 30*time.Second {
		off, err := produceRaw(t, nc, topic, 0, batch(2, "c"))
		if err != nil && !semantics.IsRetriable(err) {
			t.Fatalf("append after the foreign one: %v (want a retriable error)", err)
		}
		if err == nil {
			got = off
		}
	}
	took := time.Since(start)
	if got != 3 {
		t.Fatalf("offset after the reload %d, want 3", got)
	}
	if took > time.Second {
		t.Fatalf("the partition took appends again only after %v without the checkpoint bucket (want under 1s)", took)
	}
	// The producer's state came back too: a resend of its second batch is answered
	// with its offset, not stored again.
	if off, err := produceRaw(t, nc, topic, 0, batch(1, "b")); err != nil || off != 1 {
		t.Fatalf("resend of batch 1: offset %d, %v (want 1)", off, err)
	}
	t.Logf("appends resumed %v after the reload began", took)
}
