// Package qxdtest starts real qxd nodes for tests: an embedded JetStream in the test
// process, its data in t.TempDir, shut down by t.Cleanup.
package qxdtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
	"github.com/qxd-io/qxd/server/bridge"
)

// NodeConfig returns a test node config: a free port on 127.0.0.1, dir as data dir
// and bridges hosted, as qxd server does. Set QXD_TEST_LOG=1 to see the node's logs.
func NodeConfig(t testing.TB, dir string) server.Config {
	return nodeConfig(dir)
}

// nodeConfig is NodeConfig, for callers without a test.
func nodeConfig(dir string) server.Config {
	cfg := server.DefaultConfig()
	cfg.Services = []server.Service{bridge.Service{}}
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

// JetStream returns a plain JetStream client of n over TCP (its connection closed at
// cleanup), for tests that reach under qxd to the streams and buckets.
func JetStream(t testing.TB, n *server.Node) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
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

// FreeAddr returns a free 127.0.0.1 address, or fails the test (FreeLoopbackAddr).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// FreeLoopbackAddr returns a free 127.0.0.1 address that this process has not
// handed out before. It picks ports below Linux's ephemeral range (32768 and up),
// which outgoing connections also draw from: a port the kernel handed out for
// listening and freed again can be taken by any connection before a node binds
// it, or binds it again on restart. A port is free when it could be bound just
// now, which says nothing of a port handed out a moment ago and not yet bound:
// hence the record of what was handed out (two nodes of one cluster were once
// given the same client port, and one of them could not start). Other test
// processes (each package's tests, a second CI run) pick from the same range,
// so a port is also claimed for this process's lifetime with a lock on a file
// named after it (claimPort): a node stopped to be restarted on its ports
// found one taken by another process's node.
func FreeLoopbackAddr() (string, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = make(map[int]*os.File)
	}
	for range 200 {
		port := 20000 + rand.IntN(12000)
		if _, ok := handedOut.ports[port]; ok {
			continue
		}
		claim, ok := claimPort(port)
		if !ok {
			continue // another test process handed it out
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			handedOut.ports[port] = claim
			return addr, nil
		}
		if claim != nil {
			claim.Close()
		}
	}
	return "", errors.New("no free 127.0.0.1 port below 32000 found in 200 tries")
}

// handedOut is every port FreeLoopbackAddr returned in this process, with the
// file whose lock claims it (nil: none could be made), kept open until the
// process exits.
var handedOut struct {
	sync.Mutex
	ports map[int]*os.File
}

// claimPort takes an exclusive lock on a file named after port in a directory
// every test process on the machine shares, and reports false if another
// process holds it. The lock goes with the process, however it ends. Where
// no such file can be made, the port is not claimed (nil, true).
func claimPort(port int) (*os.File, bool) {
	dir := filepath.Join(os.TempDir(), "qxdtest-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, true
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, !errors.Is(err, syscall.EWOULDBLOCK)
	}
	return f, true
}

// ClusterConfigs returns configs for an n-node cluster on 127.0.0.1: fixed free
// client and cluster ports (so nodes can be restarted on them), each node its own
// data dir, every node routing to every other. Each call names its cluster apart,
// so that nodes of two tests never join up if one takes a port the other freed.
func ClusterConfigs(t testing.TB, n int) []server.Config {
	t.Helper()
	var cfgs []server.Config
	var routes []string
	name := fmt.Sprintf("test-%08x", rand.Uint32())
	for i := 0; i < n; i++ {
		cfg := NodeConfig(t, t.TempDir())
		cfg.Name = fmt.Sprintf("n%d", i+1)
		cfg.Listen = FreeAddr(t)
		cfg.ClusterName = name
		cfg.ClusterListen = FreeAddr(t)
		routes = append(routes, "nats://"+cfg.ClusterListen)
		cfgs = append(cfgs, cfg)
	}
	for i := range cfgs {
		cfgs[i].Peers = routes
	}
	return cfgs
}

// StartCluster starts the nodes of cfgs at once and waits until all are ready. If a
// node cannot bind its ports (something else took one since ClusterConfigs chose
// it), the others are stopped and the cluster starts again on new ports and fresh
// data dirs, written back into cfgs so that restarts use them.
func StartCluster(t testing.TB, cfgs []server.Config) []*server.Node {
	t.Helper()
	for attempt := 1; ; attempt++ {
		nodes, err := startAll(cfgs)
		if err == nil {
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var wg sync.WaitGroup
				for _, n := range nodes {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_ = n.Close(ctx)
					}()
				}
				wg.Wait()
			})
			if len(nodes) >= 3 && !cfgs[0].Auth.Enabled() && !cfgs[0].TLS.Enabled() {
				waitSystemReplicas(t, nodes[0])
			}
			return nodes
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("starting the cluster again on new ports: %v", err)
		var routes []string
		for i := range cfgs {
			cfgs[i].Listen = FreeAddr(t)
			cfgs[i].ClusterListen = FreeAddr(t)
			cfgs[i].DataDir = t.TempDir()
			routes = append(routes, "nats://"+cfgs[i].ClusterListen)
		}
		for i := range cfgs {
			cfgs[i].Peers = routes
		}
	}
}

// startAll starts the nodes of cfgs at once. When one fails, the others stop waiting
// and every node started is closed again.
func startAll(cfgs []server.Config) ([]*server.Node, error) {
	nodes := make([]*server.Node, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i, cfg := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = server.Start(ctx, cfg)
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	var first error
	for i, err := range errs {
		// The first error that is not another node's start giving up because of it.
		if err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = fmt.Errorf("start node %s: %w", cfgs[i].Name, err)
		}
	}
	if first == nil {
		return nodes, nil
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range nodes {
		if n != nil {
			_ = n.Close(ctx)
		}
	}
	return nil, first
}

// ConnectCluster returns a client of the nodes over TCP that fails over between
// them, closed at cleanup.
func ConnectCluster(t testing.TB, nodes []*server.Node) *qxd.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := qxd.Connect(ctx, ClientURLs(nodes))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// ClientURLs joins the nodes' client URLs for a client that fails over between them.
func ClientURLs(nodes []*server.Node) string {
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.ClientURL())
	}
	return strings.Join(urls, ",")
}

// waitSystemReplicas waits until qxd's own buckets have three replicas, all current.
// A node becomes ready before the last nodes join, so the buckets may be created with
// fewer replicas and raised a few seconds later; fault tests that stop a node right
// away need them raised first.
func waitSystemReplicas(t testing.TB, n *server.Node) {
	t.Helper()
	if err := systemReplicas(n); err != nil {
		t.Fatal(err)
	}
}

// systemReplicas is waitSystemReplicas, for callers without a test.
func systemReplicas(n *server.Node) error {
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, b := range []string{semantics.TopicsBucket, semantics.PartitionsBucket, semantics.GroupsBucket, semantics.OffsetsBucket} {
		for {
			s, err := js.Stream(ctx, "KV_"+b)
			if err == nil {
				info := s.CachedInfo()
				current := 0
				if info.Cluster != nil {
					for _, r := range info.Cluster.Replicas {
						if r.Current {
							current++
						}
					}
				}
				if info.Config.Replicas == 3 && current == 2 {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("bucket %s did not reach three current replicas within 60s (last error: %v)", b, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// NewProducer makes a producer of c with opts, failing the test on an error, and
// closes it when the test ends.
func NewProducer(t testing.TB, c *qxd.Client, opts ...qxd.ProducerOption) *qxd.Producer {
	t.Helper()
	p, err := c.NewProducer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// NewConsumer makes a consumer of c with opts, failing the test on an error, and
// closes it when the test ends.
func NewConsumer(t testing.TB, c *qxd.Client, opts ...qxd.ConsumerOption) *qxd.Consumer {
	t.Helper()
	cons, err := c.NewConsumer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cons.Close(context.Background()) })
	return cons
}
