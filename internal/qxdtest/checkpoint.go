package qxdtest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/semantics"
)

// WaitCheckpoint waits up to 30 s until the partitions bucket's stream holds
// the checkpoint of partition of the topic whose id is topicID at next, and
// fails the test otherwise. It reads with a message get, which only the
// bucket's stream leader answers, never a replica or a mirror of it
// (HoldBucketBehind): what the writer stored, not what a reader may be told.
func WaitCheckpoint(ctx context.Context, t testing.TB, nc *nats.Conn, topicID string, partition int32, next int64) {
	t.Helper()
	bucket := semantics.KVStream(semantics.PartitionsBucket)
	key := semantics.KVKeySubject(semantics.PartitionsBucket, semantics.CheckpointKey(topicID, partition))
	req, _ := json.Marshal(map[string]string{"last_by_subj": key})
	var last string
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		resp, err := nc.RequestWithContext(ctx, semantics.Subject(semantics.JSStreamMsgGetPrefix, bucket), req)
		if err != nil {
			last = err.Error()
			continue
		}
		var out struct {
			Message struct {
				Data []byte `json:"data"`
			} `json:"message"`
		}
		var ck semantics.Checkpoint
		if json.Unmarshal(resp.Data, &out) == nil && json.Unmarshal(out.Message.Data, &ck) == nil && ck.Next == next {
			return
		}
		last = string(resp.Data)
	}
	t.Fatalf("the checkpoint of partition %d did not reach %d: %s", partition, next, last)
}
