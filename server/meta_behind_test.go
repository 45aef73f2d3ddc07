package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// behindRounds is how many times a test reads through a bucket with a member
// held behind: each direct get reaches it with probability 1/2, so 40 reads all
// miss it with probability 2^-40.
const behindRounds = 40

// TestTopicRecordFromABucketReplicaLeftBehind reads topic records through a
// node while a member of the topics bucket's direct-get queue group holds only
// the bucket's first message (a topic's record before a partition was added): a
// describe of that topic must show the partition added, and a topic created after
// it must be found by a describe, a partition add, an alter and a delete, none
// refused. Read as a replica holds them (kvscan.Get), the first describe showed
// one partition, and with that check left out, about half of the others said
// "does not exist".
func TestTopicRecordFromABucketReplicaLeftBehind(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 120*time.Second)
	a := n.Admin()
	mirror := qxdtest.HoldBucketBehind(ctx, t, js, semantics.TopicsBucket, 1)
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: "first", Config: semantics.TopicConfig{Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	qxdtest.WaitHeld(ctx, t, mirror, 1) // "first" with one partition
	if _, err := a.AddPartitions(ctx, semantics.AddPartitionsRequest{Name: "first", Total: 2}); err != nil {
		t.Fatal(err)
	}
	for round := range behindRounds {
		name := "fresh" + string(rune('a'+round%26)) + string(rune('a'+round/26))
		if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: name, Config: semantics.TopicConfig{Partitions: 1}}); err != nil {
			t.Fatalf("round %d: create %s: %v", round, name, err)
		}
		d, err := a.DescribeTopic(ctx, "first")
		if err != nil || d.Topic.State != semantics.TopicReady || len(d.Partitions) != 2 {
			t.Fatalf("round %d: describe of a ready topic of 2 partitions: %s with %d partitions, %v", round, d.Topic.State, len(d.Partitions), err)
		}
		if _, err := a.DescribeTopic(ctx, name); err != nil {
			t.Fatalf("round %d: describe of %s just created: %v", round, name, err)
		}
		if _, err := a.AddPartitions(ctx, semantics.AddPartitionsRequest{Name: name, Total: 2}); err != nil {
			t.Fatalf("round %d: add a partition to %s just created: %v", round, name, err)
		}
		if _, err := a.AlterTopicConfig(ctx, semantics.AlterTopicConfigRequest{Name: name, Set: map[string]string{"retention.ms": "3600000"}}); err != nil {
			t.Fatalf("round %d: alter %s: %v", round, name, err)
		}
		if _, err := a.DeleteTopic(ctx, semantics.DeleteTopicRequest{Name: name}); err != nil {
			t.Fatalf("round %d: delete %s: %v", round, name, err)
		}
	}
}

// TestCheckpointFromABucketReplicaLeftBehind reads a partition's checkpoint
// through a node while a member of the partitions bucket's direct-get queue
// group holds only an older one: the read must give the latest every time, or
// a writer loading from it with every batch aged out hands out offsets again.
// Read as a replica holds it (kvscan.Get), about half the reads gave the older.
func TestCheckpointFromABucketReplicaLeftBehind(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	mirror := qxdtest.HoldBucketBehind(ctx, t, js, semantics.PartitionsBucket, 1)
	kv, err := js.KeyValue(ctx, semantics.PartitionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	const id = "behindtopicid"
	put := func(ck semantics.Checkpoint) {
		b, err := json.Marshal(ck)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, semantics.CheckpointKey(id, 0), b); err != nil {
			t.Fatal(err)
		}
	}
	put(semantics.Checkpoint{Seq: 10, Next: 100})
	qxdtest.WaitHeld(ctx, t, mirror, 1)
	put(semantics.Checkpoint{Seq: 20, Next: 250})
	for round := range behindRounds {
		ck, err := n.Admin().CheckpointRecord(ctx, id, 0)
		if err != nil || ck.Next != 250 {
			t.Fatalf("round %d: checkpoint next offset %d, %v; want the latest's 250", round, ck.Next, err)
		}
	}
}
