package qxd

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A request that fails because the client's connection is between nodes (a node
// restarting under a producer) is retriable: a producer reading a topic's metadata
// then retries until its delivery timeout instead of failing the record at once, as
// it did once in TestRollingRestart ("read topic: nats: server is disconnected").
func TestDisconnectedIsRetriable(t *testing.T) {
	for _, err := range []error{nats.ErrDisconnected, nats.ErrConnectionReconnecting} {
		if got := wrapNATSError(fmt.Errorf("get: %w", err)); !IsRetriable(got) {
			t.Errorf("%v: wrapped as %v, which is not retriable", err, got)
		}
	}
}

// Opening the metadata buckets, or reading a topic, is tried again on JetStream's
// answers while it is between leaders (a node just died), not only on silence,
// and while the connection moves to another node (a Subscribe once failed so,
// "read topic: the connection to the node is down and reconnecting", when its
// node told its clients to move); other answers fail it.
func TestTransientKVErr(t *testing.T) {
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
		if got := transientKVErr(tc.err); got != tc.want {
			t.Errorf("transientKVErr(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
