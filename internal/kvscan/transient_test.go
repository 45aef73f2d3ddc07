package kvscan

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A bucket request (opening the metadata buckets, reading a topic, changing a
// damage record) is tried again on JetStream's answers while it is between
// leaders (a node just died), not only on silence, and while the connection
// moves to another node (a Subscribe once failed so,
// "read topic: the connection to the node is down and reconnecting", when its
// node told its clients to move); other answers fail it.
func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{fmt.Errorf("bind: %w", &jetstream.APIError{Code: 500, ErrorCode: 10009, Description: "JetStream cluster not leader"}), true},
		{&jetstream.APIError{Code: 500, ErrorCode: 10118, Description: "stream is offline"}, true},
		{nats.ErrNoResponders, true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("get: %w", nats.ErrDisconnected), true},
		{nats.ErrConnectionReconnecting, true},
		{nats.ErrConnectionClosed, false},
		{jetstream.ErrBucketNotFound, false},
		{&jetstream.APIError{Code: 404, ErrorCode: jetstream.JSErrCodeStreamNotFound, Description: "stream not found"}, false},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
