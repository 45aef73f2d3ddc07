package qxd_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestClientChildNode is not a test: it is the body of the child process that
// runs the node TestProducerLeavesPausedNode pauses (qxdtest.RunChildNode).
func TestClientChildNode(t *testing.T) { qxdtest.RunChildNode(t) }

// TestProducerLeavesPausedNode runs a producer with a record in flight to each
// of six partitions, connected to a node in a child process, and pauses that
// node (SIGSTOP). The client's check after a 0.3 s stall finds another node
// answering while its own sends nothing, and moves within a second: checking the
// silent node alone, it waited 1 s more after the stall (1.3 s or more). The
// longest wait of a partition a healthy node led is logged, not bounded: here
// it includes the producer's leader lookups after the move through nodes that
// share the test's process (TestFaultDrill measures it on separate processes).
func TestProducerLeavesPausedNode(t *testing.T) {
	t.Parallel()
	producerLeavesPausedNode(t, false)
}

// TestProducerLeavesPausedNodeAfterMoves is TestProducerLeavesPausedNode with
// both other nodes of the client's pool having told it to move within the last
// 30 s, as a client that moved off each of them in turn (a cut, a clean restart,
// a pause) has: the probe asks the one that told it longest ago rather than none,
// and the client moves within a second. Probing none, it waited 1 s more after
// the stall: 1.35 s in TestChaos runs.
func TestProducerLeavesPausedNodeAfterMoves(t *testing.T) {
	t.Parallel()
	producerLeavesPausedNode(t, true)
}

// producerLeavesPausedNode is TestProducerLeavesPausedNode; with othersTold the
// client's two other nodes told it to move 20 and 10 s before the pause.
func producerLeavesPausedNode(t *testing.T, othersTold bool) {
	ctx := qxdtest.Context(t, 120*time.Second)
	var childURL string
	nodes, child, victim := qxdtest.ClusterWithChild(t, ctx, "TestClientChildNode", func(cfgs []server.Config) {
		childURL = "nats://" + cfgs[2].Listen
	})
	admin := qxdtest.Connect(t, nodes[0])
	const topic, partitions = "paused", 6
	qxdtest.CreateTopic(t, admin, topic, qxd.TopicConfig{Partitions: partitions, Replicas: 3})
	c, err := qxd.Connect(ctx, childURL+","+nodes[0].ClientURL()+","+nodes[1].ClientURL(),
		qxd.NATSOptions(nats.DontRandomize(), nats.ReconnectWait(50*time.Millisecond)),
		qxd.Logger(slog.New(countHandler{func(msg string) { t.Logf("%v: %s", time.Now().Format("15:04:05.000"), msg) }})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if got := c.Conn().ConnectedServerName(); got != victim {
		t.Fatalf("client connected to %s, want the child node %s", got, victim)
	}
	created := time.Now()
	p, err := c.NewProducer(qxd.Linger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	for i := range 20 * partitions { // the producer, its node and the writers are warm
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Partition: int32(i % partitions), Value: []byte("warm")}); err != nil {
			t.Fatal(err)
		}
	}
	js := qxdtest.JetStream(t, nodes[0])
	healthy := map[int32]string{} // partition → its leader, a healthy node
	for i := range int32(partitions) {
		s, err := js.Stream(ctx, semantics.StreamName(topic, i))
		if err != nil || s.CachedInfo().Cluster == nil {
			t.Fatalf("stream info of partition %d: %v", i, err)
		}
		if l := s.CachedInfo().Cluster.Leader; l != victim {
			healthy[i] = l
		}
	}
	if len(healthy) == 0 {
		t.Fatalf("the child node %s leads every partition", victim)
	}

	// A record in flight to each healthy node's partition, one after another,
	// from before the pause until 3 s after it.
	var (
		mu      sync.Mutex
		paused  time.Time
		longest time.Duration
		worst   int32
		wg      sync.WaitGroup
	)
	until := time.Now().Add(time.Hour)
	stopAt := func() time.Time { mu.Lock(); defer mu.Unlock(); return until }
	for part := range healthy {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; time.Now().Before(stopAt()); k++ {
				sent := time.Now()
				if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Partition: part, Value: fmt.Appendf(nil, "r%d", k)}); err != nil {
					t.Errorf("produce to partition %d: %v", part, err)
					return
				}
				took := time.Since(sent)
				mu.Lock()
				if !paused.IsZero() && took > longest {
					longest, worst = took, part
				}
				mu.Unlock()
			}
		}()
	}
	// For 8 s after a partition's election (its first, at the topic's
	// creation), an answer that has not come within 1 s is asked again (see
	// electedStale): the pause comes after that, as it would on a cluster that
	// has run a while.
	time.Sleep(max(time.Second, time.Until(created.Add(9*time.Second))))
	if othersTold {
		qxd.ToldToMove(c, nodes[0].ClientURL(), time.Now().Add(-20*time.Second))
		qxd.ToldToMove(c, nodes[1].ClientURL(), time.Now().Add(-10*time.Second))
	}
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	qxdtest.WaitStopped(ctx, t, child.Process.Pid)
	mu.Lock()
	paused = time.Now()
	until = paused.Add(3 * time.Second)
	mu.Unlock()
	t.Logf("%v: paused %s", paused.Format("15:04:05.000"), victim)
	t.Cleanup(func() { _ = child.Process.Signal(syscall.SIGCONT) })
	for c.Conn().ConnectedServerName() == victim || !c.Conn().IsConnected() {
		if time.Since(paused) > 10*time.Second {
			t.Fatalf("client still on the paused node %s after %v", victim, time.Since(paused).Round(time.Millisecond))
		}
		time.Sleep(5 * time.Millisecond)
	}
	moved := time.Since(paused)
	wg.Wait()
	t.Logf("client moved to %s %v after %s was paused; the longest wait of a partition a healthy node led: %v (partition %d, led by %s)",
		c.Conn().ConnectedServerName(), moved.Round(time.Millisecond), victim, longest.Round(time.Millisecond), worst, healthy[worst])
	if raceDetector {
		return
	}
	if bound := time.Second; moved > bound {
		t.Errorf("client left the paused node %v after the pause, want within %v", moved.Round(time.Millisecond), bound)
	}
}
