package qxdtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// LeadStream moves the leadership of a replicated stream to the named node (a
// stream leader stepdown with a preferred placement, as `nats stream cluster
// step-down --preferred` sends) and waits until that node leads it. It fails the
// test if the leadership has not moved within 30 s.
func LeadStream(ctx context.Context, t testing.TB, nc *nats.Conn, stream, node string) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := js.Stream(sctx, stream)
		cancel()
		switch {
		case err != nil:
			last = err.Error()
		case s.CachedInfo().Cluster == nil:
			last = "no cluster information"
		case s.CachedInfo().Cluster.Leader == node:
			return
		default:
			last = "led by " + s.CachedInfo().Cluster.Leader
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("stream %s: its leadership did not move to %s (last: %s)", stream, node, last)
		}
		req := fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, node)
		if _, err := nc.Request(semantics.Subject(semantics.JSStreamLeaderStepDownPrefix, stream), req, 5*time.Second); err != nil {
			last = "stepdown: " + err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
}
