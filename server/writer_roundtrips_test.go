package server_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestWriterStartsShareOneRoundTrip creates a topic of many partitions on one
// node, so that their writers start together, and counts the round trips the
// node waited on to make sure the server knows the writers' subscriptions: one
// per writer connection, not one per writer. Once the topic's creation is
// answered, a request to each partition's writer subject must find its writer
// (no "no responders"): the guarantee the round trip is for.
func TestWriterStartsShareOneRoundTrip(t *testing.T) {
	t.Parallel()
	var logs logLines
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	const topic, parts = "wrt", 12
	before := n.WriterStartBarriers()
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: parts})
	if got, most := n.WriterStartBarriers()-before, int64(n.WriterConns()); got < 1 || got > most {
		t.Fatalf("%d writers started with %d round trips to the server; want 1 to %d (one per writer connection)", parts, got, most)
	}
	if l := logs.find(t, "could not make sure the server knows the writers' subscriptions"); l != nil {
		t.Fatalf("a round trip failed: %v", l)
	}
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for p := int32(0); p < parts; p++ {
		m, err := nc.Request(semantics.WriterSubject(topic, p), buildBatch(t, semantics.NoProducer, "v"), 10*time.Second)
		if errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("%s/%d: the topic's creation was answered before the server knew its writer's subscription", topic, p)
		}
		if err != nil {
			t.Fatalf("produce to %s/%d: %v", topic, p, err)
		}
		r, err := semantics.ParseProduceReply(m.Data)
		if err == nil {
			err = r.Err()
		}
		if err != nil {
			t.Fatalf("produce to %s/%d: %v", topic, p, err)
		}
	}
}

// TestWriterStartsWithoutEpochLookups starts the writers of a replicated topic
// on a cluster: every writer's load finds
// its leader epoch in process, from its stream's RAFT node, with no stream info
// request nor listing of the node's streams.
func TestWriterStartsWithoutEpochLookups(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	c := qxdtest.ConnectCluster(t, nodes)
	ctx := qxdtest.Context(t, time.Minute)
	const topic, parts = "wep", 3
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: parts, Replicas: 3})
	// Every partition's writer serves: it loaded, its epoch too.
	for p := range int32(parts) {
		leader := streamLeader(nodes, semantics.StreamName(topic, p))
		for _, n := range nodes {
			if n.Name() == leader {
				if _, err := appendRetrying(ctx, n.Writers(), topic, p, buildBatch(t, semantics.NoProducer, "v")); err != nil {
					t.Fatalf("produce to %s/%d on %s: %v", topic, p, leader, err)
				}
			}
		}
	}
	for _, n := range nodes {
		if got := n.EpochLookups(); got != 0 {
			t.Errorf("%s: %d leader epochs looked up by their group's name, want 0 (read in process)", n.Name(), got)
		}
	}
}
