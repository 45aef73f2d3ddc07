package qxd_test

// The in-process failover scenarios of the conformance suite: a partition leader
// killed under load, and a rolling restart of all three nodes, each with a keyed
// producer and a three-member group running. Also what a producer does with a topic
// whose create has not finished where it reads the record.

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/conformance"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

func TestLeaderKilledUnderLoad(t *testing.T) {
	t.Parallel()
	fd := newFailoverFrontDoor(t)
	conformance.RunFailover(t, fd, "LeaderKilledUnderLoad")
}

func TestRollingRestart(t *testing.T) {
	t.Parallel()
	fd := newFailoverFrontDoor(t)
	conformance.RunFailover(t, fd, "RollingRestart")
}

// A producer of a topic that reads as still being created waits for the create to
// finish, within its context, as Kafka's producer waits for metadata. In a cluster a
// topic record is read from any replica of the topics bucket, and one that lags
// still says "creating" for a moment after the create returned; a create still
// running on another client reads the same.
func TestProduceWaitsForTopicBeingCreated(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)

	// The record a create writes first, before it makes the partitions' streams.
	cfg := qxd.TopicConfig{Partitions: 2, Replicas: 1}.WithDefaults()
	rec, err := json.Marshal(semantics.TopicMeta{Name: "late", ID: semantics.NewTopicID(), Config: cfg,
		State: semantics.TopicCreating, Created: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := qxdtest.JetStream(t, n).KeyValue(ctx, semantics.TopicsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, semantics.TopicKey("late"), rec); err != nil {
		t.Fatal(err)
	}

	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	produced := make(chan error, 1)
	go func() {
		produced <- p.ProduceSync(ctx, &qxd.Record{Topic: "late", Key: []byte("k"), Value: []byte("v")})
	}()
	select {
	case err := <-produced:
		t.Fatalf("produce to a topic being created returned before the create finished: %v", err)
	case <-time.After(time.Second):
	}
	// The same create again finishes the job.
	if _, err := c.Admin().CreateTopic(ctx, "late", cfg); err != nil {
		t.Fatalf("finish the create: %v", err)
	}
	if err := <-produced; err != nil {
		t.Fatalf("produce once the create finished: %v", err)
	}
}
