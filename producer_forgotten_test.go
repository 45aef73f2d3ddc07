package qxd_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// forgetfulNode starts a node whose writers forget an idle producer after 200 ms
// (Kafka's producer.id.expiration.ms, 24 h by default), with a topic of one
// partition.
func forgetfulNode(t *testing.T, topic string) (*server.Node, *qxd.Client) {
	t.Helper()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.ProducerIDExpiration = 200 * time.Millisecond
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	return n, c
}

// waitForgotten writes to the partition with a producer without an id until its
// writer has forgotten every idempotent producer (a writer forgets idle producers
// when it records its state, after a write).
func waitForgotten(ctx context.Context, t *testing.T, n *server.Node, c *qxd.Client, topic string) int {
	t.Helper()
	plain := qxdtest.NewProducer(t, c, qxd.Idempotent(false))
	writes := 0
	for {
		if err := plain.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: []byte("plain")}); err != nil {
			t.Fatal(err)
		}
		writes++
		ps, err := n.Writers().Producers(topic, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 0 {
			return writes
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the writer still remembers %d producers", len(ps))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pad makes a record large enough that a batch holds only a few (BatchBytes 1024).
var pad = make([]byte, 300)

// produceAll sends records keyed v<from>..v<to-1> without waiting between them
// (several batches in flight) and checks that each is acknowledged with an offset.
func produceAll(ctx context.Context, t *testing.T, p *qxd.Producer, topic string, from, to int) {
	t.Helper()
	var mu sync.Mutex
	var errs []error
	for i := from; i < to; i++ {
		err := p.Produce(ctx, &qxd.Record{Topic: topic, Key: fmt.Appendf(nil, "v%d", i), Value: pad}, func(r *qxd.Record, err error) {
			if err == nil && r.Offset < 0 {
				err = fmt.Errorf("record %s acknowledged without an offset", r.Key)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("%d records failed, the first: %v", len(errs), errs[0])
	}
}

// checkEachOnce reads the partition and checks that it holds v0..v<want-1>, each
// once and in order, besides the plain producer's records.
func checkEachOnce(t *testing.T, c *qxd.Client, topic string, want, plain int) {
	t.Helper()
	recs := readTopic(t, c, topic, 1, want+plain)
	next := 0
	for _, r := range recs {
		if string(r.Value) == "plain" {
			continue
		}
		if got := string(r.Key); got != fmt.Sprintf("v%d", next) {
			t.Fatalf("offset %d holds %s, want v%d", r.Offset, got, next)
		}
		next++
	}
	if next != want || len(recs) != want+plain {
		t.Fatalf("read %d records (%d of the producer's), want %d and %d", len(recs), next, want+plain, want)
	}
}

// TestProducerForgottenByWriter has a partition's writer forget an idempotent
// producer that went idle, as it does after producer.id.expiration.ms. The
// producer's next batches (their sequences go on) are refused
// UNKNOWN_PRODUCER_ID: the producer must start over under a new producer id and
// store every record once, in order.
func TestProducerForgottenByWriter(t *testing.T) {
	t.Parallel()
	const topic = "forgotten"
	ctx := qxdtest.Context(t, 60*time.Second)
	n, c := forgetfulNode(t, topic)
	p := qxdtest.NewProducer(t, c, qxd.Linger(0), qxd.BatchBytes(1024))

	produceAll(ctx, t, p, topic, 0, 50)
	plain := waitForgotten(ctx, t, n, c, topic)
	produceAll(ctx, t, p, topic, 50, 100)
	checkEachOnce(t, c, topic, 100, plain)
}

// TestProducerTxnForgottenByWriter: a transactional producer keeps its id, so a
// writer that forgot it between transactions takes its next transaction's
// batches from sequence 0 again.
func TestProducerTxnForgottenByWriter(t *testing.T) {
	t.Parallel()
	const topic = "forgottentxn"
	ctx := qxdtest.Context(t, 60*time.Second)
	n, c := forgetfulNode(t, topic)
	p := qxdtest.NewProducer(t, c, qxd.TransactionalID("forgotten-1"), qxd.Linger(0), qxd.BatchBytes(1024))

	plain := 0
	for i, span := range [][2]int{{0, 50}, {50, 100}} {
		if i > 0 {
			plain = waitForgotten(ctx, t, n, c, topic)
		}
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		produceAll(ctx, t, p, topic, span[0], span[1])
		if err := p.CommitTransaction(ctx); err != nil {
			t.Fatalf("commit of transaction %d: %v", i, err)
		}
	}
	checkEachOnce(t, c, topic, 100, plain)
}

// TestProducerRefusedPastDeliveryTimeout: a batch the writer refused
// UNKNOWN_PRODUCER_ID (it forgot the idle producer), answered after the batch's
// delivery timeout, fails as not stored, which it is, not as "may or may not be
// stored"; the producer's next record is stored as usual. The sender is held in
// the first record's callback while the second waits, past its delivery timeout
// and the writer's producer id expiration.
func TestProducerRefusedPastDeliveryTimeout(t *testing.T) {
	t.Parallel()
	const topic = "refusedlate"
	ctx := qxdtest.Context(t, 60*time.Second)
	_, c := forgetfulNode(t, topic)
	p := qxdtest.NewProducer(t, c, qxd.Linger(0), qxd.RequestTimeout(500*time.Millisecond), qxd.DeliveryTimeout(500*time.Millisecond))

	inCallback, produced := make(chan struct{}), make(chan struct{})
	if err := p.Produce(ctx, &qxd.Record{Topic: topic, Value: []byte("a")}, func(_ *qxd.Record, err error) {
		if err != nil {
			t.Errorf("record a: %v", err)
		}
		close(inCallback)
		<-produced
		time.Sleep(time.Second) // past the delivery timeout and the 200 ms expiration
	}); err != nil {
		t.Fatal(err)
	}
	<-inCallback
	result := make(chan error, 1)
	if err := p.Produce(ctx, &qxd.Record{Topic: topic, Value: []byte("b")}, func(_ *qxd.Record, err error) { result <- err }); err != nil {
		t.Fatal(err)
	}
	close(produced)
	err := <-result
	if !errors.Is(err, qxd.ErrRecordTimeout) || !errors.Is(err, qxd.ErrUnknownProducerID) ||
		!strings.Contains(err.Error(), "not stored") || strings.Contains(err.Error(), "may or may not") {
		t.Fatalf("record b, refused past its delivery timeout: %v; want a delivery timeout that says it is not stored, matching UNKNOWN_PRODUCER_ID", err)
	}
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: []byte("c")}); err != nil {
		t.Fatalf("record c: %v", err)
	}
	d, err := c.Admin().DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if hw := d.Partitions[0].HighWatermark; hw != 2 {
		t.Fatalf("high watermark %d, want 2 (a and c)", hw)
	}
	var got []string
	for _, r := range readTopic(t, c, topic, 1, 2) {
		got = append(got, string(r.Value))
	}
	if strings.Join(got, ",") != "a,c" {
		t.Fatalf("partition holds %v, want a, c", got)
	}
}
