package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// syncBuffer is a log sink that tests read while nodes write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A brand-new three-node cluster is ready with two of its nodes up: both report
// ready and serve, nothing is logged at error level for the node that is not up
// yet, and once the third node joins, qxd's own buckets get their three replicas.
func TestClusterFirstStartWithMajority(t *testing.T) {
	t.Parallel()
	cfgs := qxdtest.ClusterConfigs(t, 3)
	var logs syncBuffer
	for i := range cfgs {
		cfgs[i].Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", cfgs[i].Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	nodes := make([]*server.Node, 3)
	errs := make([]error, 2)
	start := time.Now()
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = server.Start(ctx, cfgs[i])
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, n := range nodes {
			if n != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = n.Close(ctx)
				cancel()
			}
		}
	})
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("start %s with two of three nodes of a new cluster up: %v\nlogs:\n%s", cfgs[i].Name, errs[i], logs.String())
		}
	}
	t.Logf("two of three nodes of a new cluster ready in %v", time.Since(start))

	c := qxdtest.Connect(t, nodes[0])
	qxdtest.CreateTopic(t, c, "early", qxd.TopicConfig{Partitions: 2, Replicas: 1})

	if nodes[2], errs[0] = server.Start(ctx, cfgs[2]); errs[0] != nil {
		t.Fatalf("start the third node: %v", errs[0])
	}
	js := qxdtest.JetStream(t, nodes[0])
	deadline := time.Now().Add(30 * time.Second)
	for _, b := range []string{semantics.TopicsBucket, semantics.PartitionsBucket, semantics.GroupsBucket, semantics.OffsetsBucket} {
		for {
			var err error
			s, err := js.Stream(ctx, "KV_"+b)
			if err == nil {
				if r := s.CachedInfo().Config.Replicas; r != 3 {
					err = fmt.Errorf("%d replicas", r)
				}
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bucket %s not at three replicas after the third node joined: %v\nlogs:\n%s", b, err, logs.String())
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("error logged at a normal first start: %s", line)
		}
	}
	if !strings.Contains(logs.String(), "system bucket replicas raised") {
		t.Errorf("no log of the buckets' replicas being raised:\n%s", logs.String())
	}
}
