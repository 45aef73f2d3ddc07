package qxd_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestCommitOffsetsRefusesBadInput commits offsets of a topic that does not exist,
// of a partition beyond the topic's count, beyond a partition's high watermark
// and below 0:
// each is refused with Kafka's code, says what is wrong once, and changes nothing;
// an offset at the high watermark is accepted.
func TestCommitOffsetsRefusesBadInput(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "commits", qxd.TopicConfig{Partitions: 2})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "commits", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	d, err := c.Admin().DescribeTopic(ctx, "commits")
	if err != nil {
		t.Fatal(err)
	}
	hw := map[int32]int64{}
	for _, pi := range d.Partitions {
		hw[pi.Partition] = pi.HighWatermark
	}

	cases := []struct {
		name    string
		tp      qxd.TopicPartition
		offset  int64
		want    error
		mention string
	}{
		{"unknown topic", qxd.TopicPartition{Topic: "no-such-topic", Partition: 0}, 1, qxd.ErrUnknownTopic, "no-such-topic"},
		{"unknown partition", qxd.TopicPartition{Topic: "commits", Partition: 7}, 0, qxd.ErrUnknownTopic, "partition 7"},
		{"beyond the high watermark", qxd.TopicPartition{Topic: "commits", Partition: 0}, hw[0] + 999, qxd.ErrOffsetOutOfRange, "high watermark"},
		// Kafka's logical offsets clear a position when a Kafka client commits
		// them; the SDK refuses them.
		{"latest (-1)", qxd.TopicPartition{Topic: "commits", Partition: 0}, -1, qxd.ErrInvalidRequest, "offset -1 is negative"},
		{"earliest (-2)", qxd.TopicPartition{Topic: "commits", Partition: 1}, -2, qxd.ErrInvalidRequest, "offset -2 is negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, subscribe := range []bool{false, true} {
				group := "commit-bad-assign"
				if subscribe {
					group = "commit-bad-member"
				}
				cons := qxdtest.NewConsumer(t, c, qxd.Group(group), qxd.AutoCommit(0), qxd.SessionTimeout(2*time.Second))
				if subscribe {
					if err := cons.Subscribe(ctx, "commits"); err != nil {
						t.Fatal(err)
					}
					waitAssigned(t, cons, 2)
				}
				err := cons.CommitOffsets(ctx, map[qxd.TopicPartition]int64{tc.tp: tc.offset})
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
					t.Fatalf("subscribed %v: commit %s at %d: %v, want %v naming %q", subscribe, tc.tp, tc.offset, err, tc.want, tc.mention)
				}
				if strings.Count(err.Error(), `group "`+group+`"`) > 1 {
					t.Fatalf("error repeats its prefix: %v", err)
				}
				desc, err := c.Admin().DescribeGroup(ctx, group)
				if err != nil && !errors.Is(err, qxd.ErrGroupIDNotFound) {
					t.Fatal(err)
				}
				for _, gp := range desc.Partitions {
					if gp.Committed >= 0 {
						t.Fatalf("a refused commit changed %s/%d to %d", gp.Topic, gp.Partition, gp.Committed)
					}
				}
			}
		})
	}
	cons := qxdtest.NewConsumer(t, c, qxd.Group("commit-good"))
	tp := qxd.TopicPartition{Topic: "commits", Partition: 0}
	if err := cons.CommitOffsets(ctx, map[qxd.TopicPartition]int64{tp: hw[0]}); err != nil {
		t.Fatalf("commit at the high watermark: %v", err)
	}
}

// waitAssigned waits until cons has n partitions.
func waitAssigned(t *testing.T, cons *qxd.Consumer, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(cons.Assigned()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("assigned %v, want %d partitions", cons.Assigned(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMarkCommitRecords marks some of the records Poll returned: auto-commit with
// AutoCommitMarks commits only the marked ones, however far Poll went; CommitRecords
// commits after the records given, and metadata committed with an offset is read
// back.
func TestMarkCommitRecords(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "marks", qxd.TopicConfig{Partitions: 1})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for i := range 10 {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "marks", Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	cons := qxdtest.NewConsumer(t, c, qxd.Group("marks"), qxd.AutoCommit(100*time.Millisecond), qxd.AutoCommitMarks())
	if err := cons.Subscribe(ctx, "marks"); err != nil {
		t.Fatal(err)
	}
	var recs []qxd.Record
	for len(recs) < 10 {
		got, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, got...)
	}
	cons.MarkCommitRecords(&recs[0], &recs[3], &recs[1])
	tp := qxd.TopicPartition{Topic: "marks", Partition: 0}
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	cons.Poll(pctx) // the application is done with everything polled: still only marks count
	cancel()
	waitCommitted(t, cons, tp, 4)
	time.Sleep(300 * time.Millisecond)
	waitCommitted(t, cons, tp, 4)

	if err := cons.CommitRecords(ctx, &recs[7], &recs[5]); err != nil {
		t.Fatal(err)
	}
	waitCommitted(t, cons, tp, 8)
	if err := cons.CommitOffsetsAndMetadata(ctx, map[qxd.TopicPartition]qxd.OffsetAndMetadata{tp: {Offset: 9, Metadata: "batch 42"}}); err != nil {
		t.Fatal(err)
	}
	got, err := cons.Committed(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	if got[tp] != (qxd.OffsetAndMetadata{Offset: 9, Metadata: "batch 42"}) {
		t.Fatalf("committed %+v, want offset 9 with its metadata", got[tp])
	}
	// The marks (4) are behind what the application committed: the next
	// auto-commits must not take the group back to them.
	time.Sleep(400 * time.Millisecond)
	if got, err := cons.Committed(ctx, tp); err != nil || got[tp].Offset != 9 {
		t.Fatalf("committed %+v (%v) four auto-commit intervals after the commit of 9 past the marks at 4; want 9", got[tp], err)
	}
}

// TestSeekToCommitted reads a partition to its end, then moves back to what its
// group committed: the next records are those after the commit. A partition the
// group committed nothing for goes back to its start.
func TestSeekToCommitted(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "rewind", qxd.TopicConfig{Partitions: 2})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for i := range 10 {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "rewind", Partition: int32(i % 2), Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	cons := qxdtest.NewConsumer(t, c, qxd.Group("rewind"))
	if err := cons.Subscribe(ctx, "rewind"); err != nil {
		t.Fatal(err)
	}
	read := func(want int) map[int32][]int64 {
		got := map[int32][]int64{}
		for total := 0; total < want; {
			recs, err := cons.Poll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				got[r.Partition] = append(got[r.Partition], r.Offset)
			}
			total += len(recs)
		}
		return got
	}
	read(10)
	tp0 := qxd.TopicPartition{Topic: "rewind", Partition: 0}
	if err := cons.CommitOffsets(ctx, map[qxd.TopicPartition]int64{tp0: 3}); err != nil {
		t.Fatal(err)
	}
	if err := cons.SeekToCommitted(ctx); err != nil {
		t.Fatal(err)
	}
	got := read(2 + 5)
	if want := []int64{3, 4}; !slices.Equal(got[0], want) {
		t.Errorf("partition 0 after SeekToCommitted: offsets %v, want %v (after the committed 3)", got[0], want)
	}
	if want := []int64{0, 1, 2, 3, 4}; !slices.Equal(got[1], want) {
		t.Errorf("partition 1 after SeekToCommitted: offsets %v, want %v (nothing committed: from the start)", got[1], want)
	}
}

// waitCommitted waits until the group of cons has committed want for tp.
func waitCommitted(t *testing.T, cons *qxd.Consumer, tp qxd.TopicPartition, want int64) {
	t.Helper()
	ctx := qxdtest.Context(t, 10*time.Second)
	for {
		got, err := cons.Committed(ctx, tp)
		if err == nil && got[tp].Offset == want {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("committed %+v (%v), want %d", got[tp], err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
