package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// While the node leading the groups bucket (where the group coordinator runs)
// stops gracefully, FindCoordinator asked of another node, again and again
// from the stop's start, answers within a second or so each time, and names a live
// node once the stop is over. Asked for the bucket's description while the
// leader handed its leadership off, a node used to wait JetStream's 5 s for an
// answer that never came, and the Java client's commits stood still that long.
func TestKafkaFindCoordinatorWhileItsNodeStops(t *testing.T) {
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].KafkaListen = "127.0.0.1:0"
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	ctx := qxdtest.Context(t, 2*time.Minute)
	bucket := semantics.KVStream(semantics.GroupsBucket)
	leading := -1
	for leading < 0 {
		for i, n := range nodes {
			if n.KafkaLocalLeader(bucket) == n.Name() {
				leading = i
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no node leads %s", bucket)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopping, asked := nodes[leading], nodes[(leading+1)%3]
	cl, err := kgo.NewClient(kgo.SeedBrokers(asked.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	find := func() (string, time.Duration, error) {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey = "stopping-group"
		began := time.Now()
		r, err := req.RequestWith(ctx, cl)
		took := time.Since(began)
		if err != nil {
			return "", took, err
		}
		if r.ErrorCode != 0 {
			return "", took, fmt.Errorf("error code %d", r.ErrorCode)
		}
		return fmt.Sprintf("%s:%d", r.Host, r.Port), took, nil
	}
	for _, _, err := find(); err != nil; _, _, err = find() {
		if ctx.Err() != nil {
			t.Fatalf("FindCoordinator of %s before the stop: %v", asked.Name(), err)
		}
		time.Sleep(50 * time.Millisecond) // the coordinator is starting
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := stopping.Close(sctx); err != nil {
			t.Errorf("stop %s: %v", stopping.Name(), err)
		}
	}()
	var slowest time.Duration
	asks := 0
	for after := time.After(24 * time.Hour); ; {
		_, took, _ := find()
		asks++
		slowest = max(slowest, took)
		select {
		case <-done:
			after = time.After(2 * time.Second)
			done = nil
		case <-after:
			wg.Wait()
			addr, _, err := find()
			t.Logf("%d FindCoordinator requests to %s while %s stopped and 2 s after: the slowest answered in %v; now %s (%v)",
				asks, asked.Name(), stopping.Name(), slowest.Round(time.Millisecond), addr, err)
			if slowest > 3*time.Second {
				t.Errorf("a FindCoordinator to %s while %s (leading %s) stopped took %v, want at most 3 s", asked.Name(), stopping.Name(), bucket, slowest.Round(time.Millisecond))
			}
			if err != nil || addr == stopping.KafkaAddr() {
				t.Errorf("FindCoordinator of %s after %s stopped: %s, %v; want a live node", asked.Name(), stopping.Name(), addr, err)
			}
			return
		default:
		}
		time.Sleep(20 * time.Millisecond)
	}
}
