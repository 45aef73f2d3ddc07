package partition_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestReadsByExactSequence checks, with a meta group that has its leader, that
// the reads a writer loads with answer what the leader's message gets do: the
// batch at each sequence, none past the last, every message on a subject and how
// many. TestWriterLoadsWithoutMetaLeader (server) checks them without one.
func TestReadsByExactSequence(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	const topic = "exact"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(ctx) })
	for i := range 5 {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: fmt.Appendf(nil, "v%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	r := partition.NewReader(c.Conn(), topic, 0, false)
	st, err := r.StreamInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Msgs != 5 {
		t.Fatalf("stream holds %d messages, want 5", st.Msgs)
	}
	for seq := st.FirstSeq; seq <= st.LastSeq; seq++ {
		want, err := r.Get(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.GetAt(ctx, seq)
		if err != nil || got.Seq != seq || got.Subject != want.Subject || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("GetAt(%d): sequence %d on %s, %v (want the leader's message on %s)", seq, got.Seq, got.Subject, err, want.Subject)
		}
	}
	if m, err := r.GetAt(ctx, st.LastSeq+1); !errors.Is(err, semantics.ErrNoBatch) {
		t.Fatalf("GetAt past the last sequence: sequence %d, %v (want ErrNoBatch)", m.Seq, err)
	}
	total := uint64(0)
	for _, subject := range []string{semantics.BatchSubject(topic, 0), semantics.CheckpointSubject(topic, 0)} {
		ms, err := r.AllOn(ctx, subject, st)
		if err != nil {
			t.Fatal(err)
		}
		count, err := r.SubjectCount(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(ms)) != count {
			t.Fatalf("%s: AllOn read %d messages, SubjectCount says %d", subject, len(ms), count)
		}
		for _, m := range ms {
			if m.Subject != subject {
				t.Fatalf("AllOn(%s) read a message on %s", subject, m.Subject)
			}
		}
		total += count
	}
	if total != st.Msgs {
		t.Fatalf("messages by subject %d, stream holds %d", total, st.Msgs)
	}
	last, err := r.GetLastFor(ctx, semantics.CheckpointSubject(topic, 0))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := r.GetRecentFor(ctx, semantics.CheckpointSubject(topic, 0)); err != nil || m.Seq != last.Seq {
		t.Fatalf("GetRecentFor: sequence %d, %v (want the leader's last, %d)", m.Seq, err, last.Seq)
	}
}

// TestLeaderHeldAndGapless checks, with a meta group that has its leader, that
// LeaderHeld names the sequences the leader's gets find on a compacted topic
// (with gaps), and that Gapless answers each offset-lookup probe as the leader's
// BatchAtOrAfter does on a topic that is not compacted.
// TestCompactedWriterLoadsWithoutMetaLeader and TestKafkaReadWithoutMetaLeader
// (server) check them without one.
func TestLeaderHeldAndGapless(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "held", qxd.TopicConfig{Partitions: 1, Compact: true})
	qxdtest.CreateTopic(t, c, "gapless", qxd.TopicConfig{Partitions: 1})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(ctx) })
	for i, k := range []string{"a", "b", "a", "c", "b", "a", "d"} {
		for _, topic := range []string{"held", "gapless"} {
			if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Key: []byte(k), Value: fmt.Appendf(nil, "v%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}

	r := partition.NewReader(c.Conn(), "held", 0, false)
	held, err := r.LeaderHeld(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want, got []uint64
	for seq := uint64(1); ; {
		m, err := r.Get(ctx, seq)
		if errors.Is(err, semantics.ErrNoBatch) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want, seq = append(want, m.Seq), m.Seq+1
	}
	for seq, ok := held.Next(1, held.LastSeq); ok; seq, ok = held.Next(seq+1, held.LastSeq) {
		got = append(got, seq)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(want) != 4 {
		t.Fatalf("LeaderHeld names sequences %v, the leader's gets find %v (want 4: a, b, c, d)", got, want)
	}

	r = partition.NewReader(c.Conn(), "gapless", 0, false)
	st, err := r.StreamInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := r.Gapless(st)
	for seq := uint64(0); seq <= st.LastSeq+1; seq++ {
		ws, wh, werr := r.BatchAtOrAfter(ctx, seq)
		gs, gh, gerr := g.BatchAtOrAfter(ctx, seq)
		if gs != ws || gh != wh || (gerr == nil) != (werr == nil) || werr != nil && !errors.Is(gerr, semantics.ErrNoBatch) {
			t.Fatalf("BatchAtOrAfter(%d): Gapless %d %+v %v, the leader %d %+v %v", seq, gs, gh, gerr, ws, wh, werr)
		}
	}
}
