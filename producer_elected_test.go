package qxd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestProducerResendsWhenItsStreamElectsALeader loses a produce request the way a
// dying leader loses it: a subscriber in the writers' queue group takes the
// request and answers nothing, as a killed or paused writer does; then it goes,
// and the partition's stream elects a new leader. The producer must resend the batch as soon as
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
	p := warmProducer(ctx, t, c, topic)
	const requestTimeout = electedRequestTimeout

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

	lost, done, sent := produceUntilSwallowed(ctx, t, p, topic, swallowed)
	t.Logf("%v: the silent writer took the request of %s", time.Now().Format("15:04:05.000"), lost)
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

	// Every record once, at dense offsets: the warm-up's, those the writer
	// answered at once, and the one resent.
	want := 5 + int(parseTry(t, lost)) + 1
	checkOnceDense(t, c, topic, want, lost)
	ctx2, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx2, qxd.Assignment{Topic: topic, Partition: 0, Offset: qxd.At(int64(want))}); err != nil {
		t.Fatal(err)
	}
	if extra, _ := cons.Poll(ctx2); len(extra) > 0 {
		t.Errorf("%d records after the %d produced, the first %q", len(extra), want, extra[0].Value)
	}
}

// parseTry returns i of "try-<i>".
func parseTry(t *testing.T, v string) int64 {
	t.Helper()
	var i int64
	if _, err := fmt.Sscanf(v, "try-%d", &i); err != nil {
		t.Fatalf("record value %q: %v", v, err)
	}
	return i
}

// TestProducerResendsToElectedLeaderPastSilentWriter loses a produce request
// the way a paused or cut-off leader loses it: a subscriber in the writers' queue
// group takes requests and answers nothing. It stays, as the old leader's
// writer's interest stays until the nodes drop their routes to its node (6–8 s
// after a cut), while the partition's stream elects a leader. NATS hands a queue
// request to a member picked at random, so a resend and every record sent after
// the election would reach the silent subscriber about every other time, 1 s
// lost each. The producer must send them to the writer of the node JetStream's
// advisory named (semantics.WriterDirectSubject): none may reach the silent
// subscriber, and every record must be stored once, at dense offsets.
func TestProducerResendsToElectedLeaderPastSilentWriter(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	ctx := qxdtest.Context(t, 120*time.Second)
	admin := qxdtest.Connect(t, nodes[0])
	const topic = "elected-silent"
	qxdtest.CreateTopic(t, admin, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	stream := semantics.StreamName(topic, 0)

	c, err := qxd.Connect(ctx, nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := warmProducer(ctx, t, c, topic)

	// The silent writer, on the producer's node.
	nc, err := nats.Connect(nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	elected := electedLeaders(t, nc, stream)
	var took atomic.Int32
	swallowed := make(chan struct{}, 64)
	hole, err := nc.QueueSubscribe(semantics.WriterSubject(topic, 0), "writer", func(*nats.Msg) {
		took.Add(1)
		swallowed <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The other nodes must know the subscription before the record is sent.
	time.Sleep(100 * time.Millisecond)
	lost, done, sent := produceUntilSwallowed(ctx, t, p, topic, swallowed)
	before := took.Load()

	// A new election, the silent subscriber still in the queue group.
	stepDownAndElect(ctx, t, nc, stream, elected)
	// Generous: the resend goes 100 ms after the advisory; the request timeout is
	// 30 s, and each attempt that reached the silent subscriber would wait 1 s.
	const bound = 10 * time.Second
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the record the silent subscriber took failed: %v", err)
		}
		t.Logf("%s acknowledged %v after it was sent", lost, time.Since(sent).Round(time.Millisecond))
	case <-time.After(bound):
		t.Fatalf("the record the silent subscriber took was not acknowledged within %v: the producer waits for its request timeout (%v)", bound, electedRequestTimeout)
	}
	// Records sent after the election, well within the 8 s the old leader's
	// interest may linger.
	const after = 20
	sentAfter := 0
	for i := range after {
		if n := took.Load() - before; n > 0 {
			t.Errorf("the silent subscriber took %d requests after the election (the resend and %d records sent after it): the producer sent them to the queue subject, not to the elected leader's writer", n, i)
			break
		}
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: fmt.Appendf(nil, "after-%d", i)}); err != nil {
			t.Fatal(err)
		}
		sentAfter++
	}
	if n := took.Load() - before; n > 0 && sentAfter == after {
		t.Errorf("the silent subscriber took %d requests after the election (the resend and %d records sent after it): the producer sent them to the queue subject, not to the elected leader's writer", n, after)
	}

	checkOnceDense(t, c, topic, 5+int(parseTry(t, lost))+1+sentAfter, lost)
}

// produceUntilSwallowed sends records to topic, one at a time, until the silent
// writer's subscription (swallowed) takes one; NATS hands a request to a queue
// group member picked at random, local or not. It returns that record's value,
// its callback's channel and when it was sent; records the real writer answers
// must succeed.
func produceUntilSwallowed(ctx context.Context, t *testing.T, p *qxd.Producer, topic string, swallowed <-chan struct{}) (string, chan error, time.Time) {
	t.Helper()
	for i := range 30 {
		value := fmt.Sprintf("try-%d", i)
		d := make(chan error, 1)
		sent := time.Now()
		if err := p.Produce(ctx, &qxd.Record{Topic: topic, Value: []byte(value)}, func(_ *qxd.Record, err error) { d <- err }); err != nil {
			t.Fatal(err)
		}
		select {
		case <-swallowed:
			return value, d, sent
		case err := <-d:
			if err != nil {
				t.Fatalf("produce %s: %v", value, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("record %s neither answered nor taken by the silent writer within 10 s", value)
		}
	}
	t.Fatal("the silent writer took none of 30 requests")
	return "", nil, time.Time{}
}

// checkOnceDense reads partition 0 of topic: want records at dense offsets, the
// resent one (value lost) among them once.
func checkOnceDense(t *testing.T, c *qxd.Client, topic string, want int, lost string) {
	t.Helper()
	recs := readTopic(t, c, topic, 1, want)
	var copies int
	for i, r := range recs {
		if r.Offset != int64(i) {
			t.Errorf("record %d has offset %d", i, r.Offset)
		}
		if string(r.Value) == lost {
			copies++
		}
	}
	if copies != 1 || len(recs) != want {
		t.Errorf("read %d records, %d copies of the resent one; want %d and 1", len(recs), copies, want)
	}
}

// warmProducer makes a producer of c (linger 0, a request timeout of
// electedRequestTimeout) and stores five records of topic with it, so its
// partitions' writers run and it knows them.
func warmProducer(ctx context.Context, t *testing.T, c *qxd.Client, topic string) *qxd.Producer {
	t.Helper()
	p := qxdtest.NewProducer(t, c, qxd.Linger(0), qxd.RequestTimeout(electedRequestTimeout), qxd.DeliveryTimeout(2*electedRequestTimeout))
	for i := range 5 {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: fmt.Appendf(nil, "warm-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// electedRequestTimeout is the request timeout of the election tests' producers:
// long, so a record that waits it out shows.
const electedRequestTimeout = 30 * time.Second

// electedLeaders subscribes nc to stream's leader-elected advisories: each
// leader one names comes on the channel.
func electedLeaders(t *testing.T, nc *nats.Conn, stream string) <-chan string {
	t.Helper()
	elected := make(chan string, 4)
	advisories, err := nc.Subscribe(semantics.Subject(semantics.JSAdvisoryStreamLeaderPrefix, stream), func(m *nats.Msg) {
		var adv struct {
			Leader string `json:"leader"`
		}
		_ = json.Unmarshal(m.Data, &adv)
		select {
		case elected <- adv.Leader:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = advisories.Unsubscribe() })
	return elected
}

// stepDownAndElect makes stream's leader step down and waits for the advisory of
// the election that follows on elected.
func stepDownAndElect(ctx context.Context, t *testing.T, nc *nats.Conn, stream string, elected <-chan string) {
	t.Helper()
	m, err := nc.RequestWithContext(ctx, semantics.Subject(semantics.JSStreamLeaderStepDownPrefix, stream), nil)
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Success bool `json:"success"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil || !resp.Success {
		t.Fatalf("step down %s: %s (%v)", stream, m.Data, err)
	}
	select {
	case leader := <-elected:
		t.Logf("the stream elected %s", leader)
	case <-ctx.Done():
		t.Fatal("no leader-elected advisory after the step-down")
	}
}

// TestProducerLeavesAWriterNobodyServes: a producer told that a node leads a
// partition sends its batches to that node's writer, and goes on doing so after
// the writer stopped if it did not hear the next election (its client was moving
// off the stopping node when the advisory came): each attempt is answered by
// nobody. In CI a call on such a partition took 7.026 s while the producer's
// node stopped gracefully, the rest of the 8 s the named leader is trusted. Once
// that writer answered, or a writer has had time to start, nobody answering it
// sends the batches back to the queue subject, where the partition's writer is.
func TestProducerLeavesAWriterNobodyServes(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 60*time.Second)
	c := qxdtest.Connect(t, n)
	const topic = "ghost-leader"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	p := warmProducer(ctx, t, c, topic)
	qxd.NameLeader(p, topic, 0, "gone")
	start := time.Now()
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	// A writer that never answered gets 2 s to start (electedWriterStart);
	// before, the record waited for the named leader to be forgotten, 8 s after
	// it was named.
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("a record for a partition whose named leader's writer nobody serves took %v", took.Round(time.Millisecond))
	} else {
		t.Logf("acknowledged after %v", took.Round(time.Millisecond))
	}
	checkOnceDense(t, c, topic, 6, "after")
}
