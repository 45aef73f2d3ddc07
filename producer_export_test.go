package qxd

import (
	"context"
	"errors"
	"time"

	"github.com/qxd-io/qxd/semantics"
)

// Test hooks for the producer's metadata (package qxd_test).

// AgeTopicMetadata makes p's record of topic older than the age at which the
// producer reads it again, as if it had been read that long ago.
func AgeTopicMetadata(p *Producer, topic string) {
	if tp := (*p.topics.Load())[topic]; tp != nil {
		tp.fetched.Store(time.Now().Add(-2 * metadataMaxAge).UnixNano())
	}
}

// StreamLeader is the lookup of a partition's leader a producer makes after its
// client moved (lookUpLeader), and whether the identity was refused it.
func StreamLeader(ctx context.Context, c *Client, topic string, partition int32) (leader string, denied bool, err error) {
	leader, err = c.streamLeader(ctx, semantics.StreamName(topic, partition))
	return leader, errors.Is(err, errLookupDenied), err
}

// NameLeader makes p take node for the leader of topic's partition, as when
// JetStream's advisory named it: p sends the partition's batches to that node's
// writer for a while.
func NameLeader(p *Producer, topic string, partition int32, node string) {
	if tp := (*p.topics.Load())[topic]; tp != nil {
		tp.mu.Lock()
		pp := tp.parts[partition]
		tp.mu.Unlock()
		pp.leaderElected(time.Now(), node)
	}
}
