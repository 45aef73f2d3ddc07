package qxd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestTopicLookupPastABucketReplicaLeftBehind creates topics and at once looks
// each up and produces to it with the SDK while a member of the topics bucket's
// direct-get queue group holds only the bucket's first message, as a replica cut
// from the bucket's leader answers with what it held at the cut: a mirror of the
// bucket's stream that refuses messages past its first (MaxMsgs with
// DiscardNew), which JetStream puts into the stream's queue group. A direct get
// reaches it or the stream at random; its "does not exist" must not be taken
// for the topic's. Without asking a node then, about half the lookups failed
// with ErrUnknownTopic.
func TestTopicLookupPastABucketReplicaLeftBehind(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 120*time.Second)
	mirror, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "topics_behind", Mirror: &jetstream.StreamSource{Name: semantics.KVStream(semantics.TopicsBucket)},
		MaxMsgs: 1, Discard: jetstream.DiscardNew, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	qxdtest.CreateTopic(t, c, "first", qxd.TopicConfig{Partitions: 1})
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		info, err := mirror.Info(wctx)
		if err == nil && info.State.Msgs == 1 {
			break
		}
		if wctx.Err() != nil {
			t.Fatalf("the mirror did not take the bucket's first message: %+v, %v", info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := qxdtest.NewProducer(t, c)
	// Each direct get reaches the mirror with probability 1/2: 40 lookups all
	// miss it with probability 2^-40.
	for round := range 40 {
		name := fmt.Sprintf("fresh-%d", round)
		if _, err := c.Admin().CreateTopic(ctx, name, qxd.TopicConfig{Partitions: 1}); err != nil {
			t.Fatalf("round %d: create %s: %v", round, name, err)
		}
		if _, err := c.Admin().Topic(ctx, name); err != nil {
			t.Errorf("round %d: look up %s just created: %v", round, name, err)
		}
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: name, Value: []byte("v")}); err != nil {
			t.Errorf("round %d: produce to %s just created: %v", round, name, err)
		}
	}
}
