package partition_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestDirectReadsFromAReplicaThatHoldsNone reads a partition's offsets and its
// batches with a direct reader while a member of the stream's direct-get queue
// group holds none of its messages, as a follower that has not applied the
// latest appends yet does (a follower answers direct gets once it is within 90%
// of the leader, and goes on answering when it falls behind again). That member
// is a mirror of the partition's stream whose messages all aged out: JetStream
// puts a mirror of a stream that allows direct gets into the stream's queue
// group, and a direct get reaches it or the stream at random. A replica's "none
// there" must not be taken for the partition's: every read answers what the
// leader holds, and none fails with semantics.ErrNoBatch.
func TestDirectReadsFromAReplicaThatHoldsNone(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	const topic = "behind"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	stream := semantics.StreamName(topic, 0)
	mirror, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "behind_replica", Mirror: &jetstream.StreamSource{Name: stream},
		MaxAge: 200 * time.Millisecond, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	const batches = 5
	for i := range batches {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: fmt.Appendf(nil, "v%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The mirror took the batches (and with them its place in the queue group),
	// then let them all age out.
	waitMirror(ctx, t, mirror, func(s jetstream.StreamState) bool { return s.LastSeq >= batches && s.Msgs == 0 })

	leader := partition.NewReader(c.Conn(), topic, 0, false)
	want, err := leader.ReadOffsets(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want.HighWatermark != batches || want.Msgs != batches {
		t.Fatalf("the leader's offsets: high watermark %d over %d batches, want %d", want.HighWatermark, want.Msgs, batches)
	}
	// Each direct get reaches the mirror with probability 1/2: 40 rounds of a
	// few gets each miss it with probability far below 2^-40.
	direct := partition.NewReader(c.Conn(), topic, 0, true)
	for round := range 40 {
		got, err := direct.ReadOffsets(ctx, nil)
		if err != nil {
			t.Fatalf("round %d: ReadOffsets through a direct reader: %v", round, err)
		}
		if got.LogStart != want.LogStart || got.HighWatermark != want.HighWatermark ||
			got.FirstBatchSeq != want.FirstBatchSeq || got.LastBatchSeq != want.LastBatchSeq {
			t.Fatalf("round %d: direct offsets %+v, the leader's %+v", round, got, want)
		}
		for seq := want.FirstSeq; seq <= want.LastSeq; seq++ {
			m, err := direct.Get(ctx, seq)
			if err != nil || m.Seq != seq {
				t.Fatalf("round %d: direct Get(%d): sequence %d, %v (the leader holds it)", round, seq, m.Seq, err)
			}
			s, _, err := direct.BatchAtOrAfter(ctx, seq)
			if err != nil || s != seq {
				t.Fatalf("round %d: direct BatchAtOrAfter(%d): sequence %d, %v (the leader holds it)", round, seq, s, err)
			}
		}
		if m, err := direct.Get(ctx, want.LastSeq+1); !errors.Is(err, semantics.ErrNoBatch) {
			t.Fatalf("round %d: direct Get past the last sequence: sequence %d, %v (want ErrNoBatch)", round, m.Seq, err)
		}
	}
}

// waitMirror waits until the mirror's state satisfies ok.
func waitMirror(ctx context.Context, t *testing.T, s jetstream.Stream, ok func(jetstream.StreamState) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var last jetstream.StreamState
	for ctx.Err() == nil {
		info, err := s.Info(ctx)
		if err == nil {
			if last = info.State; ok(last) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the mirror's state did not come as wanted: %+v", last)
}

// TestDirectOffsetsFromAReplicaLeftBehind reads a partition's offsets with a
// direct reader while a member of the stream's direct-get queue group holds only
// its first batches and takes no more, as a follower cut from its leader does (a
// cut between two nodes while the third reaches both: it answers direct gets
// with what it held at the cut for as long as the cut lasts). That member is a
// mirror of the partition's stream that refuses messages past its first ones
// (MaxMsgs with DiscardNew). Its last batch is not the partition's: the high
// watermark must be the leader's every time, or a consumer starting at an
// offset the group committed past it is sent back to the reset policy's start.
func TestDirectOffsetsFromAReplicaLeftBehind(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	const topic = "left-behind"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	stream := semantics.StreamName(topic, 0)
	const held, batches = 3, 8
	mirror, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "left_behind_replica", Mirror: &jetstream.StreamSource{Name: stream},
		MaxMsgs: held, Discard: jetstream.DiscardNew, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	for i := range batches {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: fmt.Appendf(nil, "v%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitMirror(ctx, t, mirror, func(s jetstream.StreamState) bool { return s.Msgs == held })

	leader := partition.NewReader(c.Conn(), topic, 0, false)
	want, err := leader.ReadOffsets(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want.HighWatermark != batches {
		t.Fatalf("the leader's high watermark %d, want %d", want.HighWatermark, batches)
	}
	// Each direct get reaches the mirror with probability 1/2: 40 rounds miss
	// it with probability 2^-40.
	direct := partition.NewReader(c.Conn(), topic, 0, true)
	for round := range 40 {
		got, err := direct.ReadOffsets(ctx, nil)
		if err != nil {
			t.Fatalf("round %d: ReadOffsets through a direct reader: %v", round, err)
		}
		if got.HighWatermark != want.HighWatermark || got.LastBatchSeq != want.LastBatchSeq {
			t.Fatalf("round %d: direct offsets: high watermark %d (last batch at %d), the leader's %d (at %d)",
				round, got.HighWatermark, got.LastBatchSeq, want.HighWatermark, want.LastBatchSeq)
		}
	}
}
