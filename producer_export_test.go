package qxd

import "time"

// Test hooks for the producer's metadata (package qxd_test).

// AgeTopicMetadata makes p's record of topic older than the age at which the
// producer reads it again, as if it had been read that long ago.
func AgeTopicMetadata(p *Producer, topic string) {
	if tp := (*p.topics.Load())[topic]; tp != nil {
		tp.fetched.Store(time.Now().Add(-2 * metadataMaxAge).UnixNano())
	}
}
