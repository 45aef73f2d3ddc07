package qxdtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// HoldBucketBehind makes a member of bucket's direct-get queue group that takes
// the bucket's next held messages and no more, as a replica cut from the bucket's
// leader answers with what it held at the cut: a mirror of the bucket's stream
// that refuses messages past its first ones (MaxMsgs with DiscardNew).
// JetStream puts a mirror of a stream that allows direct gets (every KV
// bucket's) into the stream's queue group, and a direct get reaches it or the
// stream at random. The caller waits for the mirror to fill (WaitHeld).
func HoldBucketBehind(ctx context.Context, t testing.TB, js jetstream.JetStream, bucket string, held int64) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: bucket + "_behind", Mirror: &jetstream.StreamSource{Name: semantics.KVStream(bucket)},
		MaxMsgs: held, Discard: jetstream.DiscardNew, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// WaitHeld waits until the mirror s holds held messages.
func WaitHeld(ctx context.Context, t testing.TB, s jetstream.Stream, held uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var last jetstream.StreamState
	for ctx.Err() == nil {
		if info, err := s.Info(ctx); err == nil {
			if last = info.State; last.Msgs == held {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the mirror holds %d messages, want %d", last.Msgs, held)
}
