package server_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
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

// A held Metadata answer ended by a request behind it names the leader its
// node's replica knows then, not the one it knew at its last look: the answer
// to the request behind, read a moment later, names the new leader, and
// librdkafka, told the old leader between two answers naming the new one,
// stayed with the old one's broker (docs/kafka.md). The looks are an hour
// apart here, so only the last look, when the hold ends, can see the leader of
// the partition created during the hold.
func TestKafkaElectionHoldEndsWithLeaderKnownThen(t *testing.T) {
	n, c := kafkaHoldCluster(t)
	ctx := qxdtest.Context(t, time.Minute)
	const topic = "held-then-led"
	stream := semantics.StreamName(topic, 0)
	n.SetKafkaElectionPoll(time.Hour)

	behind := make(chan struct{})
	answered := make(chan int32, 1)
	go func() { answered <- n.KafkaAwaitElection(ctx, behind, stream, time.Now().Add(time.Minute)) }()
	time.Sleep(200 * time.Millisecond) // its first look: no such partition yet
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	awaitLocalLeader(ctx, t, n, stream)
	close(behind)
	select {
	case leader := <-answered:
		if leader == -1 {
			t.Errorf("the hold ended by a request behind it answered no leader; the node's replica knew %s", n.KafkaLocalLeader(stream))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the hold did not end within 10 s of the request behind it")
	}
}

// A Metadata answer that took long to read names each partition's leader as
// the node's replica knows it when the answer is done, where that is a later
// term than the one read at the start: here an answer that read another
// leader at epoch 0 before the partition's group elected its first.
func TestKafkaSlowMetadataNamesLeaderKnownThen(t *testing.T) {
	n, c := kafkaHoldCluster(t)
	ctx := qxdtest.Context(t, time.Minute)
	const topic = "slow-answer"
	stream := semantics.StreamName(topic, 0)
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	awaitLocalLeader(ctx, t, n, stream)
	const stale = 12345 // no node's broker id
	if leader, epoch := n.KafkaRefreshLeaders(topic, 0, stale, 0); leader == stale || epoch <= 0 {
		t.Errorf("a slow answer that read leader %d at epoch 0 still names leader %d at epoch %d; the node's replica knows %s", stale, leader, epoch, n.KafkaLocalLeader(stream))
	}
	if leader, epoch := n.KafkaRefreshLeaders(topic, 0, stale, 1<<30); leader != stale || epoch != 1<<30 {
		t.Errorf("a slow answer that read leader %d at an epoch above the replica's was changed to leader %d at epoch %d", stale, leader, epoch)
	}
}

// kafkaHoldCluster starts three nodes with Kafka listeners and returns the
// first, whose Metadata holds the tests drive, and a client of all three.
func kafkaHoldCluster(t *testing.T) (*server.Node, *qxd.Client) {
	t.Helper()
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].KafkaListen = "127.0.0.1:0"
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	return nodes[0], qxdtest.ConnectCluster(t, nodes)
}

// awaitLocalLeader waits until n's replica of stream names a leader.
func awaitLocalLeader(ctx context.Context, t *testing.T, n *server.Node, stream string) {
	t.Helper()
	for n.KafkaLocalLeader(stream) == "" {
		if ctx.Err() != nil {
			t.Fatalf("%s's replica of %s names no leader", n.Name(), stream)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A Metadata answer does not wait for the Kafka address of a node its node has
// lost (no route to it): it cannot answer. A node that first needed a killed
// node's address after the kill waited kafkaBrokerWait (1 s) in every answer,
// and librdkafka's produce requests to healthy partitions, sent behind a
// Metadata request on its connection, waited with it. "gone" is a node n
// never had a route to; the other nodes answer, but n knows them already.
func TestKafkaBrokersSkipLostNode(t *testing.T) {
	n, _ := kafkaHoldCluster(t)
	ctx := qxdtest.Context(t, time.Minute)
	var others []string
	for _, name := range []string{"n1", "n2", "n3"} {
		if name != n.Name() {
			others = append(others, name)
		}
	}
	known := n.KafkaBrokers(ctx, append([]string{n.Name()}, others...))
	if len(known) != 3 {
		t.Fatalf("brokers answered %v, want the three nodes", known)
	}
	began := time.Now()
	got := n.KafkaBrokers(ctx, append(append([]string{n.Name()}, others...), "gone"))
	took := time.Since(began)
	if !slices.Equal(got, known) {
		t.Errorf("brokers answered %v, want %v", got, known)
	}
	if took > 500*time.Millisecond {
		t.Errorf("brokers took %v: it waited for the address of a node it has no route to", took.Round(time.Millisecond))
	}
}

// While its node has lost a node, a Metadata answer waits for JetStream's view
// (the topics bucket, the stream list, which wait for the lost node's streams)
// only kafkaLostMetadataWait, then answers from the node's own view: the
// answers after a kill took 500 ms each, and librdkafka's requests behind them
// on their connections waited with them. With every node there, the wait runs
// to its bound.
func TestKafkaMetadataWaitCutWhileNodeLost(t *testing.T) {
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].KafkaListen = "127.0.0.1:0"
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	n, gone := nodes[0], nodes[2]
	if err := n.KafkaMetadataWaitEnd(300 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("with every node there the wait ended with %v, want its deadline", err)
	}
	ctx := qxdtest.Context(t, time.Minute)
	// What the rule needs: n has seen a route to gone. A cluster whose start
	// returned has a majority, not yet every route (under load n1's route to
	// n3 came seconds later).
	for !n.ProbesSawRoute(gone.Name()) {
		if ctx.Err() != nil {
			t.Fatalf("%s's watch never saw a route to %s: %s", n.Name(), gone.Name(), n.ProbeState())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := gone.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for n.HasRouteTo(gone.Name()) {
		if ctx.Err() != nil {
			t.Fatalf("%s still has a route to %s", n.Name(), gone.Name())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := n.KafkaMetadataWaitEnd(5 * time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("with %s gone the wait ended with %v, want cut short (%v); %s's watch: %s", gone.Name(), err, context.Canceled, n.Name(), n.ProbeState())
	}
}
