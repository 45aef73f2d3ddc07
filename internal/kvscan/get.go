package kvscan

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/partition"
)

// Get reads key's latest entry from kv with nats.go's KV Get, which on a bucket
// that allows direct gets (every bucket made by CreateKeyValue: qxd's all are) is
// a direct get, answered by any replica of the bucket's stream. One handed to a
// replica on a paused or cut-off node is never answered, so Get sends it again
// after partition.DirectAttempt (partition.DirectRead): a silent replica costs
// half a second, not the whole timeout. What it reads is what one KV Get reads:
// the entry as the replica that answers holds it, which may be behind the
// leader's. A read that must see the leader's latest value does not use Get.
func Get(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	return partition.DirectRead(ctx, func(ctx context.Context, _ func()) (jetstream.KeyValueEntry, error) {
		return kv.Get(ctx, key)
	})
}
