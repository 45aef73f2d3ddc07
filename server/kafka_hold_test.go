package server_test

import (
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// A node holding a Metadata answer for a partition's new leader stops holding it
// once the client sends another request on the connection (kafka.RequestBehind):
// here a partition that gets no leader while the answer waits, so only the
// request behind it can end the hold before its deadline.
func TestKafkaElectionHoldEndsWithRequestBehind(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := qxdtest.Context(t, time.Minute)
	stream := semantics.StreamName("no-such-topic", 0)

	began := time.Now()
	if leader := n.KafkaAwaitElection(ctx, nil, stream, began.Add(300*time.Millisecond)); leader != -1 {
		t.Fatalf("a partition with no stream answered with leader %d", leader)
	}
	if d := time.Since(began); d < 250*time.Millisecond {
		t.Fatalf("with no request behind it the hold ended after %v, before its deadline (300 ms)", d)
	}

	behind := make(chan struct{})
	time.AfterFunc(100*time.Millisecond, func() { close(behind) })
	began = time.Now()
	n.KafkaAwaitElection(ctx, behind, stream, began.Add(20*time.Second))
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("the hold ended %v after it began, with a request behind it after 100 ms; want soon after that, not at its deadline (20 s)", d.Round(time.Millisecond))
	}
}
