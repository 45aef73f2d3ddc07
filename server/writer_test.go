package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

func buildBatch(t *testing.T, pi semantics.ProducerInfo, values ...string) []byte {
	t.Helper()
	var b semantics.BatchBuilder
	for _, v := range values {
		b.Append(&semantics.Record{Key: []byte("k"), Value: []byte(v), Timestamp: time.UnixMilli(1700000000000)})
	}
	out, err := b.Build(nil, pi, semantics.CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// produceRaw sends one batch to a partition's writer and returns its answer. Like
// the SDK, it retries while no writer listens yet (the writer manager retries a
// writer that did not start, every 250 ms).
func produceRaw(t *testing.T, nc *nats.Conn, topic string, p int32, batch []byte) (int64, error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	m, err := nc.Request(semantics.WriterSubject(topic, p), batch, 5*time.Second)
	for errors.Is(err, nats.ErrNoResponders) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		m, err = nc.Request(semantics.WriterSubject(topic, p), batch, 5*time.Second)
	}
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	r, err := semantics.ParseProduceReply(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	return r.BaseOffset, r.Err()
}

// produceStep is a batch sent to a partition's writer and the answer it must get:
// the offset it is stored at, or the error wantErr.
type produceStep struct {
	name    string
	batch   []byte
	want    int64
	wantErr error
}

// produceSteps sends each step's batch to partition 0 of topic in turn and checks
// its answer.
func produceSteps(t *testing.T, nc *nats.Conn, topic string, steps []produceStep) {
	t.Helper()
	for _, s := range steps {
		got, err := produceRaw(t, nc, topic, 0, s.batch)
		if s.wantErr != nil {
			if !errors.Is(err, s.wantErr) {
				t.Fatalf("%s: offset %d err %v, want %v", s.name, got, err, s.wantErr)
			}
			continue
		}
		if err != nil || got != s.want {
			t.Fatalf("%s: offset %d err %v, want offset %d", s.name, got, err, s.want)
		}
	}
}

func TestWriterIdempotence(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "idem", qxd.TopicConfig{})
	nc := c.Conn()

	pid := int64(4242)
	b0 := buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 0, BaseSequence: 0}, "a", "b", "c")
	b1 := buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 0, BaseSequence: 3}, "d")
	gap := buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 0, BaseSequence: 9}, "x")

	steps := []produceStep{
		{"first batch", b0, 0, nil},
		{"second batch", b1, 3, nil},
		{"resend of the first batch returns its offset", b0, 0, nil},
		{"resend of the second batch returns its offset", b1, 3, nil},
		{"a gap in sequence numbers", gap, -1, semantics.ErrOutOfOrderSequence},
		{"another producer", buildBatch(t, semantics.NoProducer, "e"), 4, nil},
		{"newer epoch starts over", buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 1, BaseSequence: 0}, "f"), 5, nil},
		{"older epoch is fenced", buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 0, BaseSequence: 4}, "g"), -1, semantics.ErrInvalidProducerEpoch},
		{"corrupt batch", append([]byte{}, b0[:len(b0)-1]...), -1, semantics.ErrCorruptMessage},
	}
	produceSteps(t, nc, "idem", steps)
	d, err := c.Admin().DescribeTopic(context.Background(), "idem")
	if err != nil {
		t.Fatal(err)
	}
	if hw := d.Partitions[0].HighWatermark; hw != 6 {
		t.Fatalf("high watermark %d, want 6: a resend was stored twice or a bad batch was stored", hw)
	}
}

// TestWriterUnknownProducerSequence sends a fresh producer's second batch before
// its first, as a pipelined producer does when its first batches went to a writer
// that was not listening yet: the writer must refuse it (UNKNOWN_PRODUCER_ID),
// storing nothing, so that the first batch and then the second are stored when
// resent. Taken as the producer's start, the second batch made the resend of the
// first a "duplicate": acknowledged, never stored. A new epoch likewise begins at
// sequence 0.
func TestWriterUnknownProducerSequence(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "unknownpid", qxd.TopicConfig{})
	nc := c.Conn()

	pid := int64(7373)
	b0 := buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 0, BaseSequence: 0}, "a", "b", "c")
	b1 := buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 0, BaseSequence: 3}, "d", "e")
	steps := []produceStep{
		{"a later batch before the first", b1, -1, semantics.ErrUnknownProducerID},
		{"the first batch", b0, 0, nil},
		{"the later batch resent", b1, 3, nil},
		{"a new epoch not at sequence 0", buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 1, BaseSequence: 5}, "f"), -1, semantics.ErrOutOfOrderSequence},
		{"the old epoch goes on", buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 0, BaseSequence: 5}, "g"), 5, nil},
		{"a new epoch at sequence 0", buildBatch(t, semantics.ProducerInfo{ID: pid, Epoch: 1, BaseSequence: 0}, "h"), 6, nil},
	}
	produceSteps(t, nc, "unknownpid", steps)
	d, err := c.Admin().DescribeTopic(context.Background(), "unknownpid")
	if err != nil {
		t.Fatal(err)
	}
	if hw := d.Partitions[0].HighWatermark; hw != 7 {
		t.Fatalf("high watermark %d, want 7: every record sent in order is stored once", hw)
	}
}

// TestWriterFencedByForeignAppend appends a batch to the partition stream behind the
// writer's back, as a writer on another node that still believed it led would. The
// writer's next append must be refused by Nats-Expected-Last-Sequence, the writer
// must reload from the log, and offsets must stay dense.
func TestWriterFencedByForeignAppend(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "fence", qxd.TopicConfig{})
	nc := c.Conn()

	if off, err := produceRaw(t, nc, "fence", 0, buildBatch(t, semantics.NoProducer, "a", "b")); err != nil || off != 0 {
		t.Fatalf("first append: %d %v", off, err)
	}
	foreign := buildBatch(t, semantics.NoProducer, "c", "d", "e")
	semantics.SetBaseOffset(foreign, 2)
	js, _ := nc.JetStream()
	if _, err := js.Publish(semantics.BatchSubject("fence", 0), foreign); err != nil {
		t.Fatal(err)
	}
	// The first append after the foreign one fails (retriable), the next succeeds
	// after the reload, at offset 5.
	var got int64 = -1
	for i := 0; i < 5; i++ {
		off, err := produceRaw(t, nc, "fence", 0, buildBatch(t, semantics.NoProducer, "f"))
		if err == nil {
			got = off
			break
		}
		if !semantics.IsRetriable(err) {
			t.Fatalf("append after a foreign write: %v (want a retriable error)", err)
		}
	}
	if got != 5 {
		t.Fatalf("offset after reload %d, want 5", got)
	}
	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "fence", Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	var vals string
	for len(vals) < 6 {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Offset != int64(len(vals)) {
				t.Fatalf("offset %d at position %d", r.Offset, len(vals))
			}
			vals += string(r.Value)
		}
	}
	if vals != "abcdef" {
		t.Fatalf("read %q, want abcdef", vals)
	}
}

func TestWriterRejectsOversizedBatch(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "small", qxd.TopicConfig{MaxMessageBytes: 2048})
	big := make([]byte, 4000)
	var b semantics.BatchBuilder
	b.Append(&semantics.Record{Value: big})
	data, _ := b.Build(nil, semantics.NoProducer, semantics.CompressionNone)
	_, err := produceRaw(t, c.Conn(), "small", 0, data)
	if !errors.Is(err, semantics.ErrMessageTooLarge) {
		t.Fatalf("err %v, want MESSAGE_TOO_LARGE", err)
	}
	d, _ := c.Admin().DescribeTopic(context.Background(), "small")
	if d.Partitions[0].HighWatermark != 0 {
		t.Fatal("oversized batch changed the partition")
	}

}

// TestWriterPipelineFencedAfterStaleView sends several produce requests back to back
// right after a batch was appended behind the writer's back. The first append of the
// pipeline is refused by Nats-Expected-Last-Sequence; the ones sent behind it expect
// one sequence more each and would match the real log, so only the message-id chain
// keeps them from landing at offsets computed from the stale state.
func TestWriterPipelineFencedAfterStaleView(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "chain", qxd.TopicConfig{})
	nc := c.Conn()

	if off, err := produceRaw(t, nc, "chain", 0, buildBatch(t, semantics.NoProducer, "a")); err != nil || off != 0 {
		t.Fatalf("first append: %d %v", off, err)
	}
	foreign := buildBatch(t, semantics.NoProducer, "b")
	semantics.SetBaseOffset(foreign, 1)
	js, _ := nc.JetStream()
	if _, err := js.Publish(semantics.BatchSubject("chain", 0), foreign); err != nil {
		t.Fatal(err)
	}
	const pipelined = 6
	inbox := nats.NewInbox()
	replies, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < pipelined; i++ {
		if err := nc.PublishRequest(semantics.WriterSubject("chain", 0), inbox, buildBatch(t, semantics.NoProducer, "p")); err != nil {
			t.Fatal(err)
		}
	}
	stored := 0
	for i := 0; i < pipelined; i++ {
		m, err := replies.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		r, err := semantics.ParseProduceReply(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if r.Err() == nil {
			stored++
		} else if !semantics.IsRetriable(r.Err()) {
			t.Fatalf("reply %d: %v (want success or a retriable error)", i, r.Err())
		}
	}
	want := 2 + stored
	cons := qxdtest.NewConsumer(t, c)
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "chain", Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for len(offs) < want {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("read %d of %d records: %v", len(offs), want, err)
		}
		for _, r := range recs {
			offs = append(offs, r.Offset)
		}
	}
	for i, o := range offs {
		if o != int64(i) {
			t.Fatalf("offsets %v are not dense from 0: a stale append landed", offs)
		}
	}
	st, err := js.StreamInfo(semantics.StreamName("chain", 0))
	if err != nil {
		t.Fatal(err)
	}
	if st.State.Msgs != uint64(want) {
		t.Fatalf("stream holds %d batches, want %d (1 + foreign + %d acknowledged)", st.State.Msgs, want, stored)
	}
}

// TestWriterRechecksLogBeforeOutOfOrder stores an idempotent producer's next batch
// behind the writer's back, as the partition's previous writer does in its last
// moments. The producer's following batch is ahead of what the writer knows; the
// writer must look at the log and take it, not refuse it as out of order.
func TestWriterRechecksLogBeforeOutOfOrder(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "recheck", qxd.TopicConfig{})
	nc := c.Conn()

	pid := int64(77)
	if off, err := produceRaw(t, nc, "recheck", 0, buildBatch(t, semantics.ProducerInfo{ID: pid, BaseSequence: 0}, "a")); err != nil || off != 0 {
		t.Fatalf("first append: %d %v", off, err)
	}
	foreign := buildBatch(t, semantics.ProducerInfo{ID: pid, BaseSequence: 1}, "b", "c")
	semantics.SetBaseOffset(foreign, 1)
	js, _ := nc.JetStream()
	if _, err := js.Publish(semantics.BatchSubject("recheck", 0), foreign); err != nil {
		t.Fatal(err)
	}
	off, err := produceRaw(t, nc, "recheck", 0, buildBatch(t, semantics.ProducerInfo{ID: pid, BaseSequence: 3}, "d"))
	if err != nil || off != 3 {
		t.Fatalf("batch after the one stored by another writer: offset %d err %v, want offset 3", off, err)
	}
	// A real gap is still refused.
	_, err = produceRaw(t, nc, "recheck", 0, buildBatch(t, semantics.ProducerInfo{ID: pid, BaseSequence: 9}, "x"))
	if !errors.Is(err, semantics.ErrOutOfOrderSequence) {
		t.Fatalf("sequence gap: err %v, want out of order", err)
	}
}

// TestWriterForgetsIdleProducerAtAdmission: a producer idle past the producer id
// expiration is unknown to the writer at its next batch, whether or not the writer
// has dropped it from its state yet (it does so only when it records its state,
// after a write). So its next batch, not at sequence 0, is refused as from an
// unknown producer, and the producer starting over at sequence 0 is stored, not
// answered as a duplicate of its first batch: every writer, one that rebuilt the
// producer's state from the log included, judges the producer the same way.
func TestWriterForgetsIdleProducerAtAdmission(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.ProducerIDExpiration = 300 * time.Millisecond
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "idlepid", qxd.TopicConfig{})
	nc := c.Conn()

	pid := int64(7474)
	if off, err := produceRaw(t, nc, "idlepid", 0, buildBatch(t, semantics.ProducerInfo{ID: pid, BaseSequence: 0}, "a", "b", "c")); err != nil || off != 0 {
		t.Fatalf("first batch: offset %d err %v", off, err)
	}
	time.Sleep(500 * time.Millisecond)
	if off, err := produceRaw(t, nc, "idlepid", 0, buildBatch(t, semantics.ProducerInfo{ID: pid, BaseSequence: 3}, "d")); !errors.Is(err, semantics.ErrUnknownProducerID) {
		t.Fatalf("next batch after the expiration: offset %d err %v, want UNKNOWN_PRODUCER_ID", off, err)
	}
	if off, err := produceRaw(t, nc, "idlepid", 0, buildBatch(t, semantics.ProducerInfo{ID: pid, BaseSequence: 0}, "d")); err != nil || off != 3 {
		t.Fatalf("starting over at sequence 0: offset %d err %v, want offset 3", off, err)
	}
	d, err := c.Admin().DescribeTopic(context.Background(), "idlepid")
	if err != nil {
		t.Fatal(err)
	}
	if hw := d.Partitions[0].HighWatermark; hw != 4 {
		t.Fatalf("high watermark %d, want 4", hw)
	}
}
