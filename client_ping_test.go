package qxd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestPing checks Client.Ping against a qxd node and against a plain nats-server,
// where it fails by its deadline with ErrUnavailable naming the cause, instead of
// admin requests retrying for their 30 s.
func TestPing(t *testing.T) {
	t.Parallel()
	c := qxdtest.Connect(t, qxdtest.StartNode(t))
	if err := c.Ping(t.Context()); err != nil {
		t.Errorf("ping a qxd node: %v", err)
	}

	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(ns.Shutdown)
	plain, err := qxd.Connect(t.Context(), ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	err = plain.Ping(ctx)
	if !errors.Is(err, semantics.ErrUnavailable) || !strings.Contains(err.Error(), "has no JetStream") || !strings.Contains(err.Error(), ns.ClientURL()) {
		t.Errorf("ping a plain nats-server: err = %v, want ErrUnavailable naming the server and that it has no JetStream", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("ping with a 1s deadline took %s", took)
	}
}

// TestPingOverASlowLink pings a qxd node whose answers take longer than one
// question's wait (2s), as a loaded machine's can: Ping takes the late answer
// rather than give up every question at its wait and report that JetStream did
// not answer. The node's answers reach the client through a relay that
// delays every byte from the node once the client is connected.
func TestPingOverASlowLink(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	link := startRelay(t, strings.TrimPrefix(n.ClientURL(), "nats://"))
	c, err := qxd.Connect(t.Context(), "nats://"+link.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(t.Context()); err != nil {
		t.Fatalf("ping over the link before it slows: %v", err)
	}
	link.lag(2500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping with answers 2.5s late: %v", err)
	}
	t.Logf("ping with answers 2.5s late took %s", time.Since(start).Round(time.Millisecond))
}
