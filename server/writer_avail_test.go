package server_test

import (
	"encoding/json"
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
	c := qxdtest.ConnectCluster(t, nodes)
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

	// Shut the other two nodes down (nats-server's Shutdown: clean, connections
	// closed, so the buckets' requests fail fast rather than wait on a silent
	// node; bucketFallbackTimeout bounds that wait): the buckets (three replicas)
	// lose their quorum, the partition (one replica, on the leader) does not.
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
	// A loaded machine (two test runs on two cores) can take over the default 5 s
	// to store it right after the other nodes stopped.
	// Through the leader's own connection: the cluster client may be on a node
	// just shut down, and fail with "server is disconnected".
	ljs, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ljs.Publish(semantics.BatchSubject(topic, 0), foreign, nats.AckWait(30*time.Second)); err != nil {
		t.Fatalf("foreign append: %v", err)
	}
	start := time.Now()
	var got int64 = -1
	var lastErr error
	for got < 0 && time.Since(start) < 30*time.Second {
		off, err := produceRaw(t, nc, topic, 0, batch(2, "c"))
		if err != nil && !semantics.IsRetriable(err) {
			t.Fatalf("append after the foreign one: %v (want a retriable error)", err)
		}
		if err == nil {
			got = off
		}
		lastErr = err
	}
	took := time.Since(start)
	if got != 3 {
		t.Fatalf("offset after the reload %d, want 3 (last error: %v)", got, lastErr)
	}
	if took > time.Second {
		t.Fatalf("the partition took appends again only after %v without the checkpoint bucket (want under 1s)", took)
	}
	// The producer's state came back too: a resend of its second batch is answered
	// with its offset, not stored again.
	if off, err := produceRaw(t, nc, topic, 0, batch(1, "b")); err != nil || off != 1 {
		t.Fatalf("resend of batch 1: offset %d, %v (want 1)", off, err)
	}
}

// TestWriterLoadsFromBucketCheckpoint loads a partition whose stream holds no
// checkpoint of its own, as one last written before checkpoints went into the
// stream: the writer must take the bucket's checkpoint and replay what follows it,
// so the next offset and the idempotent producer's earlier batches are right.
func TestWriterLoadsFromBucketCheckpoint(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	info := qxdtest.CreateTopic(t, c, "legacy", qxd.TopicConfig{})
	nc := c.Conn()
	js := qxdtest.JetStream(t, n)

	pid := int64(9)
	batch := func(seq int32, base int64, values ...string) []byte {
		b := buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 0, BaseSequence: seq}, values...)
		semantics.SetBaseOffset(b, base)
		return b
	}
	// What an older writer left: two batches on the batch subject, and a bucket
	// checkpoint covering the first (sequence 1) with the producer's state.
	for _, b := range [][]byte{batch(0, 0, "a", "b"), batch(2, 2, "c")} {
		if _, err := js.Publish(ctx, semantics.BatchSubject("legacy", 0), b); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := js.KeyValue(ctx, semantics.PartitionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	ck, _ := json.Marshal(semantics.Checkpoint{Seq: 1, Next: 2, Producers: map[int64]semantics.ProducerCheckpoint{
		pid: {Epoch: 0, BaseSeq: 0, LastSeq: 1, BaseOffset: 0, Seen: time.Now().UnixMilli()},
		// A producer only the checkpoint knows (its batches aged out, say).
		8: {Epoch: 0, BaseSeq: 5, LastSeq: 5, BaseOffset: 1, Seen: time.Now().UnixMilli()}}})
	if _, err := kv.Put(ctx, semantics.CheckpointKey(info.ID, 0), ck); err != nil {
		t.Fatal(err)
	}

	// The writer loaded an empty stream; its first append is fenced, and it
	// reloads from the bucket's checkpoint and the batch after it.
	var got int64 = -1
	for i := 0; i < 5 && got < 0; i++ {
		off, err := produceRaw(t, nc, "legacy", 0, batch(3, 0, "d"))
		if err != nil && !semantics.IsRetriable(err) {
			t.Fatalf("append after the older writer's batches: %v", err)
		}
		if err == nil {
			got = off
		}
	}
	if got != 3 {
		t.Fatalf("offset after the reload %d, want 3", got)
	}
	for _, tc := range []struct {
		name  string
		batch []byte
		want  int64
	}{
		{"a batch the bucket's checkpoint covers", batch(0, 0, "a", "b"), 0},
		{"a batch replayed from the log", batch(2, 0, "c"), 2},
		{"a batch of a producer only the checkpoint knows", buildBatch(t, semantics.ProducerInfo{ID: 8, Epoch: 0, BaseSequence: 5}, "x"), 1},
	} {
		if off, err := produceRaw(t, nc, "legacy", 0, tc.batch); err != nil || off != tc.want {
			t.Errorf("resend of %s: offset %d, %v (want %d)", tc.name, off, err, tc.want)
		}
	}
}
