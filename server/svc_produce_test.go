package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// appendWhenLed appends through the node's produce service, retrying while the
// partition's writer is starting (NOT_LEADER_OR_FOLLOWER) until ctx ends.
func appendWhenLed(ctx context.Context, t *testing.T, w *server.Writers, topic string, p int32, batch []byte) semantics.ProduceReply {
	t.Helper()
	for {
		r, err := w.Append(ctx, topic, p, append([]byte(nil), batch...))
		if err == nil {
			return r
		}
		if !errors.Is(err, semantics.ErrNotLeader) || ctx.Err() != nil {
			t.Fatalf("append to %s/%d: %v", topic, p, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWritersAppendThenFetch drives the produce and fetch services in process, with
// no NATS request in between: batches appended get dense offsets, and a fetch from
// any offset returns the stored batches from the one holding it.
func TestWritersAppendThenFetch(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "svc-produce", qxd.TopicConfig{Partitions: 2})
	ctx := qxdtest.Context(t, 30*time.Second)
	w, f := n.Writers(), n.Fetcher()

	r0 := appendWhenLed(ctx, t, w, "svc-produce", 1, buildBatch(t, semantics.NoProducer, "a", "b", "c"))
	r1 := appendWhenLed(ctx, t, w, "svc-produce", 1, buildBatch(t, semantics.NoProducer, "d", "e"))
	if r0.BaseOffset != 0 || r1.BaseOffset != 3 || r1.LogAppendTime.IsZero() {
		t.Fatalf("base offsets %d, %d (append time %v), want 0, 3", r0.BaseOffset, r1.BaseOffset, r1.LogAppendTime)
	}

	// Pipelined: answers come in the order of the calls, with offsets following.
	const async = 5
	got := make(chan semantics.ProduceReply, async)
	for i := range async {
		w.AppendAsync("svc-produce", 1, buildBatch(t, semantics.ProducerInfo{ID: 77, BaseSequence: int32(i)}, "x"),
			func(r semantics.ProduceReply) { got <- r })
	}
	for i := range async {
		select {
		case r := <-got:
			if r.Code != 0 || r.BaseOffset != int64(5+i) {
				t.Fatalf("async append %d: code %d, base offset %d (%s), want offset %d", i, r.Code, r.BaseOffset, r.Detail, 5+i)
			}
		case <-ctx.Done():
			t.Fatal("async appends not answered")
		}
	}

	tests := []struct {
		name     string
		offset   int64
		maxBytes int
		bases    []int64
	}{
		{"from the start", 0, 0, []int64{0, 3, 5, 6, 7, 8, 9}},
		{"inside a batch", 4, 0, []int64{3, 5, 6, 7, 8, 9}},
		{"max bytes still returns one batch", 1, 1, []int64{0}},
		{"at the high watermark", 10, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := f.Fetch(ctx, server.FetchRequest{Topic: "svc-produce", Partition: 1, Offset: tc.offset, MaxBytes: tc.maxBytes})
			if err != nil {
				t.Fatal(err)
			}
			if res.LogStartOffset != 0 || res.HighWatermark != 10 {
				t.Fatalf("log start %d, high watermark %d, want 0, 10", res.LogStartOffset, res.HighWatermark)
			}
			var bases []int64
			for _, b := range res.Batches {
				h, err := semantics.ParseBatchHeader(b)
				if err != nil {
					t.Fatal(err)
				}
				bases = append(bases, h.BaseOffset)
			}
			if len(bases) != len(tc.bases) {
				t.Fatalf("batches at %v, want %v", bases, tc.bases)
			}
			for i := range bases {
				if bases[i] != tc.bases[i] {
					t.Fatalf("batches at %v, want %v", bases, tc.bases)
				}
			}
		})
	}
	recs, err := semantics.DecodeRecords(nil, mustFetch(ctx, t, f, 3).Batches[0], "svc-produce", 1)
	if err != nil || len(recs) != 2 || string(recs[0].Value) != "d" || recs[0].Offset != 3 {
		t.Fatalf("records of the batch at 3: %+v, %v", recs, err)
	}
}

func mustFetch(ctx context.Context, t *testing.T, f *server.Fetcher, offset int64) server.FetchResult {
	t.Helper()
	res, err := f.Fetch(ctx, server.FetchRequest{Topic: "svc-produce", Partition: 1, Offset: offset})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestWritersAndFetcherRefuseBadInput: a bad request to either service gets its
// Kafka error and stores nothing.
func TestWritersAndFetcherRefuseBadInput(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	qxdtest.CreateTopic(t, c, "svc-bad", qxd.TopicConfig{})
	ctx := qxdtest.Context(t, 30*time.Second)
	w, f := n.Writers(), n.Fetcher()
	appendWhenLed(ctx, t, w, "svc-bad", 0, buildBatch(t, semantics.NoProducer, "a"))

	corrupt := buildBatch(t, semantics.NoProducer, "b")
	corrupt[len(corrupt)-1] ^= 0xff
	appends := []struct {
		name  string
		topic string
		p     int32
		batch []byte
		want  error
	}{
		{"bad topic name", "no/slash", 0, buildBatch(t, semantics.NoProducer, "b"), semantics.ErrInvalidTopic},
		{"partition not led here", "svc-bad", 3, buildBatch(t, semantics.NoProducer, "b"), semantics.ErrNotLeader},
		{"unknown topic", "svc-none", 0, buildBatch(t, semantics.NoProducer, "b"), semantics.ErrNotLeader},
		{"corrupt batch", "svc-bad", 0, corrupt, semantics.ErrCorruptMessage},
	}
	for _, tc := range appends {
		if _, err := w.Append(ctx, tc.topic, tc.p, tc.batch); !errors.Is(err, tc.want) {
			t.Errorf("append, %s: %v, want %v", tc.name, err, tc.want)
		}
	}
	fetches := []struct {
		name string
		req  server.FetchRequest
		want error
	}{
		{"bad topic name", server.FetchRequest{Topic: "no/slash"}, semantics.ErrInvalidTopic},
		{"unknown topic", server.FetchRequest{Topic: "svc-none"}, semantics.ErrUnknownTopic},
		{"unknown partition", server.FetchRequest{Topic: "svc-bad", Partition: 1}, semantics.ErrUnknownTopic},
		{"offset past the high watermark", server.FetchRequest{Topic: "svc-bad", Offset: 2}, semantics.ErrOffsetOutOfRange},
		{"negative offset", server.FetchRequest{Topic: "svc-bad", Offset: -1}, semantics.ErrOffsetOutOfRange},
	}
	for _, tc := range fetches {
		if _, err := f.Fetch(ctx, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("fetch, %s: %v, want %v", tc.name, err, tc.want)
		}
	}
	res, err := f.Fetch(ctx, server.FetchRequest{Topic: "svc-bad"})
	if err != nil || res.HighWatermark != 1 || len(res.Batches) != 1 {
		t.Fatalf("after the refusals: high watermark %d, %d batches (%v), want 1, 1", res.HighWatermark, len(res.Batches), err)
	}
}
