package qxd_test

import (
	"fmt"
	"testing"
	"time"

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
	mirror := qxdtest.HoldBucketBehind(ctx, t, js, semantics.TopicsBucket, 1)
	qxdtest.CreateTopic(t, c, "first", qxd.TopicConfig{Partitions: 1})
	qxdtest.WaitHeld(ctx, t, mirror, 1)
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
