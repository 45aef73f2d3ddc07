package qxd

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
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
