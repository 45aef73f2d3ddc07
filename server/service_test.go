package server_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// countingService counts its starts and closes, and checks its Host works.
type countingService struct{ started, closed *atomic.Int64 }

func (s countingService) Start(ctx context.Context, h server.Host) (server.Running, error) {
	if _, err := h.JetStream().AccountInfo(ctx); err != nil {
		return nil, err
	}
	s.started.Add(1)
	return countingRunning{s.closed}, nil
}

type countingRunning struct{ closed *atomic.Int64 }

func (r countingRunning) Close(context.Context) { r.closed.Add(1) }

type failingService struct{}

func (failingService) Start(context.Context, server.Host) (server.Running, error) {
	return nil, errors.New("no room")
}

// TestServicesStartAndStop: the services a node is given start with it and close
// with it; when one fails to start, the node does not start, says which, and closes
// those started before it.
func TestServicesStartAndStop(t *testing.T) {
	t.Parallel()
	var started, closed atomic.Int64
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.Services = []server.Service{countingService{&started, &closed}}
	n := qxdtest.StartNodeWith(t, cfg)
	if started.Load() != 1 {
		t.Fatalf("service started %d times, want 1", started.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if closed.Load() != 1 {
		t.Errorf("service closed %d times after the node's Close, want 1", closed.Load())
	}

	started.Store(0)
	closed.Store(0)
	cfg = qxdtest.NodeConfig(t, t.TempDir())
	cfg.Services = []server.Service{countingService{&started, &closed}, failingService{}}
	_, err := server.Start(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "no room") || !strings.Contains(err.Error(), "failingService") {
		t.Fatalf("Start with a failing service: %v, want its error naming it", err)
	}
	if started.Load() != 1 || closed.Load() != 1 {
		t.Errorf("service before the failing one: started %d, closed %d; want 1 and 1", started.Load(), closed.Load())
	}
}
