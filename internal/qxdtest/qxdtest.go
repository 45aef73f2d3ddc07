// Package qxdtest starts real qxd nodes for tests: an embedded JetStream in the test
// process, its data in t.TempDir, shut down by t.Cleanup.
package qxdtest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/server"
)

// NodeConfig returns a test node config: a free port on 127.0.0.1 and dir as data
// dir. Set QXD_TEST_LOG=1 to see the node's logs.
func NodeConfig(t testing.TB, dir string) server.Config {
	cfg := server.DefaultConfig()
	cfg.Name = "test"
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	if os.Getenv("QXD_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

// StartNode starts a single node with its data in a fresh temporary directory.
func StartNode(t testing.TB) *server.Node {
	t.Helper()
	return StartNodeWith(t, NodeConfig(t, t.TempDir()))
}

// StartNodeWith starts a node with cfg and stops it at cleanup.
func StartNodeWith(t testing.TB, cfg server.Config) *server.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n
}

// Connect returns a client of n over TCP, closed at cleanup.
func Connect(t testing.TB, n *server.Node) *qxd.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := qxd.Connect(ctx, n.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Context returns a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// CreateTopic creates a topic or fails the test.
func CreateTopic(t testing.TB, c *qxd.Client, name string, cfg qxd.TopicConfig) qxd.TopicInfo {
	t.Helper()
	info, err := c.Admin().CreateTopic(Context(t, 30*time.Second), name, cfg)
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	return info
}
