package qxd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestProducerResendsWhenItsStreamElectsALeader loses a produce request the way a
// dying leader loses it: a subscriber in the writers' queue group, on the node the
// producer is connected to (NATS prefers it), takes the request and answers
// nothing, as a killed or paused writer does; then it goes, and the partition's
// stream elects a new leader. The producer must resend the batch as soon as
// JetStream announces the election, not after its request timeout (30 s here), and
// the record must be stored once.
func TestProducerResendsWhenItsStreamElectsALeader(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 120*time.Second)
	admin := qxdtest.Connect(t, nodes[0])
	const topic = "elected"
	qxdtest.CreateTopic(t, admin, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	stream := semantics.StreamName(topic, 0)

	// The producer's node leads nothing of the partition.
	js := qxdtest.JetStream(t, nodes[0])
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	leader := s.CachedInfo().Cluster.Leader
	var via int
	for i, n := range nodes {
		if n.Name() != leader {
			via = i
			break
		}
	}
	c, err := qxd.Connect(ctx, nodes[via].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	const requestTimeout = 30 * time.Second
	p := qxdtest.NewProducer(t, c, qxd.Linger(0), qxd.RequestTimeout(requestTimeout), qxd.DeliveryTimeout(2*requestTimeout))
	for i := range 5 {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: fmt.Appendf(nil, "warm-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}

	// The silent writer, on the producer's node.
	nc, err := nats.Connect(nodes[via].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	elections, err := nc.Subscribe(semantics.Subject(semantics.JSAdvisoryStreamLeaderPrefix, stream), func(m *nats.Msg) {
		t.Logf("%v: %s", time.Now().Format("15:04:05.000"), m.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer elections.Unsubscribe()
	swallowed := make(chan struct{}, 16)
	hole, err := nc.QueueSubscribe(semantics.WriterSubject(topic, 0), "writer", func(*nats.Msg) { swallowed <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The node must know the subscription before the record is sent.
	time.Sleep(100 * time.Millisecond)

	done := make(chan error, 1)
	sent := time.Now()
	if err := p.Produce(ctx, &qxd.Record{Topic: topic, Value: []byte("lost-request")}, func(_ *qxd.Record, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-swallowed:
	case <-time.After(10 * time.Second):
		t.Fatal("the silent writer did not get the request within 10 s")
	}
	t.Logf("%v: the silent writer took the request", time.Now().Format("15:04:05.000"))
	if err := hole.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// A new election, as after the leader's death.
	m, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil)
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil || !resp.Success {
		t.Fatalf("step down %s: %s (%v)", stream, m.Data, err)
	}
	stepped := time.Now()

	// Generous: the election and the new writer's start take a second or two, the
	// request timeout 30 s.
	bound := requestTimeout / 2
	select {
	case err := <-done:
		t.Logf("%v: answered", time.Now().Format("15:04:05.000"))
		if err != nil {
			t.Fatalf("the record whose request was lost failed: %v", err)
		}
		t.Logf("acknowledged %v after the step-down (%v after it was sent)",
			time.Since(stepped).Round(time.Millisecond), time.Since(sent).Round(time.Millisecond))
	case <-time.After(bound):
		t.Fatalf("the record whose request was lost was not acknowledged within %v of the election: the producer waits for its request timeout (%v)", bound, requestTimeout)
	}

	recs := readTopic(t, c, topic, 1, 6)
	var copies int
	for i, r := range recs {
		if r.Offset != int64(i) {
			t.Errorf("record %d has offset %d", i, r.Offset)
		}
		if string(r.Value) == "lost-request" {
			copies++
		}
	}
	if copies != 1 || len(recs) != 6 {
		t.Errorf("read %d records, %d copies of the resent one; want 6 and 1", len(recs), copies)
	}
	ctx2, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx2, qxd.Assignment{Topic: topic, Partition: 0, Offset: qxd.At(6)}); err != nil {
		t.Fatal(err)
	}
	if extra, _ := cons.Poll(ctx2); len(extra) > 0 {
		t.Errorf("%d records after the 6 produced, the first %q", len(extra), extra[0].Value)
	}
}
