package qxd_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

func freePort(t *testing.T) string {
	t.Helper()
	return qxdtest.FreeAddr(t)
}

// startRestartable starts a node on a fixed port, so that it can be closed and
// started again on cfg (with qxdtest.StartNodeWith) where its clients expect it,
// and a client that reconnects every 50ms, closed at cleanup. Closing the node is
// the test's business.
func startRestartable(t *testing.T, ctx context.Context) (server.Config, *server.Node, *qxd.Client) {
	t.Helper()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.Listen = freePort(t)
	n, err := server.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := qxd.Connect(ctx, "nats://"+cfg.Listen, qxd.NATSOptions(nats.ReconnectWait(50*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return cfg, n, c
}

// TestProducerRidesOutNodeRestart restarts the node while a producer sends: the
// producer retries (no responders, timeouts) until the node is back, idempotence
// keeps resent batches from being stored twice, and every acknowledged record is
// read back exactly once, in order per key.
func TestProducerRidesOutNodeRestart(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 90*time.Second)
	cfg, n, c := startRestartable(t, ctx)
	qxdtest.CreateTopic(t, c, "restart", qxd.TopicConfig{Partitions: 3})
	p, err := c.NewProducer(qxd.RequestTimeout(time.Second), qxd.Linger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}

	const total = 20000
	var mu sync.Mutex
	acked := map[string]bool{}
	var failures []error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < total; i++ {
			r := &qxd.Record{Topic: "restart", Key: []byte(fmt.Sprintf("k%d", i%10)), Value: []byte(fmt.Sprint(i))}
			err := p.Produce(ctx, r, func(r *qxd.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, err)
					return
				}
				acked[string(r.Value)] = true
			})
			if err != nil {
				mu.Lock()
				failures = append(failures, err)
				mu.Unlock()
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	time.Sleep(150 * time.Millisecond)
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	qxdtest.StartNodeWith(t, cfg)
	<-done
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p.Close(ctx)
	mu.Lock()
	if len(failures) > 0 {
		t.Fatalf("%d records failed, first: %v", len(failures), failures[0])
	}
	if len(acked) != total {
		t.Fatalf("%d records acknowledged, want %d", len(acked), total)
	}
	mu.Unlock()

	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	cons.Assign(ctx, qxd.Assignment{Topic: "restart", Partition: 0}, qxd.Assignment{Topic: "restart", Partition: 1}, qxd.Assignment{Topic: "restart", Partition: 2})
	seen := map[string]int{}
	last := map[string]int{}
	for got := 0; got < total; {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("after %d records: %v", got, err)
		}
		for _, r := range recs {
			v := string(r.Value)
			seen[v]++
			if seen[v] > 1 {
				t.Fatalf("record %s stored twice", v)
			}
			var i int
			fmt.Sscan(v, &i)
			if prev, ok := last[string(r.Key)]; ok && i < prev {
				t.Fatalf("key %s: %d after %d", r.Key, i, prev)
			}
			last[string(r.Key)] = i
		}
		got += len(recs)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if extra, _ := cons.Poll(short); len(extra) > 0 {
		t.Fatalf("%d records beyond the %d produced: duplicates", len(extra), total)
	}
}
