package qxdtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd/server"
)

// SharedCluster is a cluster that several tests of one package use, each with
// topics of its own. It belongs to no test: it starts on the first Nodes call
// and stops in Close, which the package's TestMain calls after m.Run, so one
// test's end never stops it under another, and a run that needs no cluster
// starts none. Its data lives in a directory of its own, removed by Close.
type SharedCluster struct {
	n    int
	edit func(cfgs []server.Config)

	once  sync.Once
	dir   string
	nodes []*server.Node
	err   error
}

// NewSharedCluster returns an n-node cluster, not started yet, whose configs
// (ClusterConfigs') edit changes before the nodes start; edit may be nil.
func NewSharedCluster(n int, edit func(cfgs []server.Config)) *SharedCluster {
	return &SharedCluster{n: n, edit: edit}
}

// Nodes returns the cluster's nodes, starting the cluster on the first call
// and waiting until it is ready (with three nodes or more, until qxd's own
// buckets have all their replicas). A cluster that could not start fails t,
// and every later caller with it.
func (s *SharedCluster) Nodes(t testing.TB) []*server.Node {
	t.Helper()
	s.once.Do(s.start)
	if s.err != nil {
		t.Fatalf("shared cluster: %v", s.err)
	}
	return s.nodes
}

func (s *SharedCluster) start() {
	s.dir, s.err = os.MkdirTemp("", "qxdtest-cluster-")
	if s.err != nil {
		return
	}
	for attempt := 1; ; attempt++ {
		cfgs, err := s.configs(attempt)
		if err != nil {
			s.err = err
			return
		}
		nodes, err := startAll(cfgs)
		if err == nil {
			s.nodes = nodes
			if len(nodes) >= 3 && !cfgs[0].Auth.Enabled() && !cfgs[0].TLS.Enabled() {
				s.err = systemReplicas(nodes[0])
			}
			return
		}
		// As StartCluster: a port taken since it was chosen means new ports.
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			s.err = err
			return
		}
	}
}

// configs are ClusterConfigs' configs without a test: data in s.dir.
func (s *SharedCluster) configs(attempt int) ([]server.Config, error) {
	var cfgs []server.Config
	var routes []string
	name := fmt.Sprintf("test-%08x", rand.Uint32())
	for i := range s.n {
		dir := filepath.Join(s.dir, fmt.Sprintf("try%d-n%d", attempt, i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		cfg := nodeConfig(dir)
		cfg.Name = fmt.Sprintf("n%d", i+1)
		cfg.ClusterName = name
		var err error
		if cfg.Listen, err = FreeLoopbackAddr(); err != nil {
			return nil, err
		}
		if cfg.ClusterListen, err = FreeLoopbackAddr(); err != nil {
			return nil, err
		}
		routes = append(routes, "nats://"+cfg.ClusterListen)
		cfgs = append(cfgs, cfg)
	}
	for i := range cfgs {
		cfgs[i].Peers = routes
	}
	if s.edit != nil {
		s.edit(cfgs)
	}
	return cfgs, nil
}

// Close stops the cluster's nodes, if it was started, and removes its data.
// Call it once, from TestMain after m.Run.
func (s *SharedCluster) Close() {
	s.once.Do(func() {}) // a cluster never started stays so
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range s.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = n.Close(ctx)
		}()
	}
	wg.Wait()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}
