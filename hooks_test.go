package qxd_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// countingHook implements every hook interface and counts what it sees.
type countingHook struct {
	mu           sync.Mutex
	connects     []qxd.BrokerMetadata
	dialTimes    []time.Duration
	disconnects  int
	written      int
	writtenBytes int
	read         int
	readBatches  int
}

func (h *countingHook) OnBrokerConnect(m qxd.BrokerMetadata, d time.Duration, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.connects = append(h.connects, m)
		h.dialTimes = append(h.dialTimes, d)
	}
}

func (h *countingHook) OnBrokerDisconnect(qxd.BrokerMetadata, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.disconnects++
}

func (h *countingHook) OnProduceBatchWritten(topic string, _ int32, m qxd.ProduceBatchMetrics) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.written += m.NumRecords
	h.writtenBytes += m.BatchBytes
}

func (h *countingHook) OnFetchBatchRead(topic string, _ int32, m qxd.FetchBatchMetrics) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.read += m.NumRecords
	h.readBatches++
}

func (h *countingHook) wait(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		done := ok()
		h.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hooks never saw %s: %+v", what, h)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHooks gives a client a hook of every kind: it sees the connection made, the
// batches written and read with their record counts, and a disconnection and
// reconnection. A hook of no kind is refused.
func TestHooks(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	ctx := qxdtest.Context(t, 30*time.Second)
	if _, err := qxd.Connect(ctx, n.ClientURL(), qxd.Hooks(42)); !errors.Is(err, qxd.ErrInvalidConfig) || !strings.Contains(err.Error(), "int") {
		t.Fatalf("Connect with a hook of no kind: %v, want ErrInvalidConfig naming its type", err)
	}
	h := &countingHook{}
	c, err := qxd.Connect(ctx, n.ClientURL(), qxd.Hooks(h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h.wait(t, "the connection", func() bool { return len(h.connects) == 1 })
	if h.connects[0].Node == "" || h.dialTimes[0] <= 0 {
		t.Fatalf("connect hook got %+v after %v, want the node named and the dial time", h.connects[0], h.dialTimes[0])
	}
	qxdtest.CreateTopic(t, c, "hooked", qxd.TopicConfig{Partitions: 2})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	var recs []*qxd.Record
	for i := range 10 {
		recs = append(recs, &qxd.Record{Topic: "hooked", Partition: int32(i % 2), Value: []byte("value")})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	p.Close(ctx)
	h.wait(t, "10 records written", func() bool { return h.written == 10 && h.writtenBytes > 0 })
	cons := qxdtest.NewConsumer(t, c)
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "hooked", Partition: 0, Offset: qxd.AtStart()},
		qxd.Assignment{Topic: "hooked", Partition: 1, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < 10; {
		rs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += len(rs)
	}
	h.wait(t, "10 records read", func() bool { return h.read == 10 && h.readBatches >= 1 })

	if err := c.Conn().ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	h.wait(t, "a disconnection and a reconnection", func() bool { return h.disconnects >= 1 && len(h.connects) >= 2 })
}

func TestTraceParent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01", false},
		{"", false},
	} {
		got, err := qxd.ParseTraceParent(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseTraceParent(%q): %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), "traceparent") {
			t.Errorf("ParseTraceParent(%q): %v, want an error naming the header", tc.in, err)
		}
		if tc.ok && strings.HasPrefix(tc.in, "00") && got.String() != tc.in {
			t.Errorf("ParseTraceParent(%q).String() = %q", tc.in, got.String())
		}
	}
}

// TestTraceParentInHeaders carries a trace context through a node in a record's
// headers: the consumer reads the producer's traceparent, and a child of it keeps
// the trace with a new span.
func TestTraceParentInHeaders(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "traced", qxd.TopicConfig{Partitions: 1})
	tp := qxd.NewTraceParent()
	r := &qxd.Record{Topic: "traced", Value: []byte("v"), Headers: []qxd.Header{{Key: "app", Value: []byte("x")}}}
	qxd.SetTraceParent(r, qxd.NewTraceParent())
	qxd.SetTraceParent(r, tp) // replaces
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.ProduceSync(ctx, r); err != nil {
		t.Fatal(err)
	}
	cons := qxdtest.NewConsumer(t, c)
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "traced", Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	recs, err := cons.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := qxd.TraceParentOf(&recs[0])
	if !ok || got != tp || len(recs[0].Headers) != 2 {
		t.Fatalf("read traceparent %v (%v) and headers %v, want %v beside the app's header", got, ok, recs[0].Headers, tp)
	}
	child := got.Child()
	if child.TraceID != tp.TraceID || child.SpanID == tp.SpanID || !child.Sampled() {
		t.Fatalf("child %v of %v: want the same trace, a new span, sampled", child, tp)
	}
	if keys := (qxd.HeaderCarrier{R: &recs[0]}).Keys(); strings.Join(keys, ",") != "app,traceparent" {
		t.Fatalf("carrier keys %v", keys)
	}
}

func FuzzParseTraceParent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := qxd.ParseTraceParent(s)
		if err != nil {
			return
		}
		again, err := qxd.ParseTraceParent(tp.String())
		if err != nil || again != tp {
			t.Fatalf("%q parsed to %v, whose String %q parses to %v (%v)", s, tp, tp.String(), again, err)
		}
	})
}
