package qxd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestCommitOfRecreatedTopicRefused: a consumer still holding records of a topic
// that was deleted and created again cannot commit them to the new topic.
func TestCommitOfRecreatedTopicRefused(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "re", qxd.TopicConfig{Partitions: 1})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "re", Value: []byte("a")}, &qxd.Record{Topic: "re", Value: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	cons := qxdtest.NewConsumer(t, c, qxd.Group("g"))
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "re", Partition: 0, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < 2; {
		rs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += len(rs)
	}

	admin := c.Admin()
	if err := admin.DeleteTopic(ctx, "re"); err != nil {
		t.Fatal(err)
	}
	qxdtest.CreateTopic(t, c, "re", qxd.TopicConfig{Partitions: 1})
	err = cons.Commit(ctx)
	if !errors.Is(err, semantics.ErrUnknownTopic) || !strings.Contains(err.Error(), "created again") {
		t.Errorf("commit of the old topic's records: err = %v, want UNKNOWN_TOPIC_OR_PARTITION saying the topic was created again", err)
	}
	if d, err := admin.DescribeGroup(ctx, "g"); err == nil && len(d.Partitions) > 0 {
		t.Errorf("the refused commit was stored: %+v", d.Partitions)
	}
}

// TestSeekGroupOffsetsDryRun: a dry run returns the change and makes none.
func TestSeekGroupOffsetsDryRun(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "dry", qxd.TopicConfig{Partitions: 2})
	admin := c.Admin()
	if _, err := admin.SeekGroupOffsets(ctx, "g", qxd.GroupSeek{Topics: []string{"dry"}, To: qxd.AtEnd(), DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DescribeGroup(ctx, "g"); !errors.Is(err, semantics.ErrGroupIDNotFound) {
		t.Errorf("after a dry run the group exists: err = %v", err)
	}
	want := []qxd.GroupOffsetChange{{Topic: "dry", Partition: 0, Old: -1, New: 0}, {Topic: "dry", Partition: 1, Old: -1, New: 0}}
	got, err := admin.SeekGroupOffsets(ctx, "g", qxd.GroupSeek{Topics: []string{"dry"}, To: qxd.AtStart()})
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("seek: %+v, %v; want %+v", got, err, want)
	}
	got, err = admin.SeekGroupOffsets(ctx, "g", qxd.GroupSeek{AllTopics: true, Shift: true, ShiftBy: 5, DryRun: true})
	if err != nil || len(got) != 2 || got[0].Old != 0 || got[0].New != 0 {
		t.Errorf("dry shift of an empty topic: %+v, %v; want 0 → 0 (clamped)", got, err)
	}
}

// TestCommitOfRecreatedTopicRefusedRightAfterACommit: the coordinator's check of
// a commit's topic reads the topics bucket's leader while it answers, also right
// after a commit of the same topic: a commit of the old topic's records, made
// just after the topic was created again, is refused.
func TestCommitOfRecreatedTopicRefusedRightAfterACommit(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "re2", qxd.TopicConfig{Partitions: 1})
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: "re2", Value: []byte("a")}, &qxd.Record{Topic: "re2", Value: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	cons := qxdtest.NewConsumer(t, c, qxd.Group("g2"))
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx, qxd.Assignment{Topic: "re2", Partition: 0, Offset: qxd.AtStart()}); err != nil {
		t.Fatal(err)
	}
	rs, err := cons.Poll(ctx)
	if err != nil || len(rs) == 0 {
		t.Fatalf("poll: %d records, %v", len(rs), err)
	}
	if err := cons.CommitRecords(ctx, &rs[0]); err != nil {
		t.Fatal(err)
	}
	admin := c.Admin()
	if err := admin.DeleteTopic(ctx, "re2"); err != nil {
		t.Fatal(err)
	}
	qxdtest.CreateTopic(t, c, "re2", qxd.TopicConfig{Partitions: 1})
	err = cons.CommitRecords(ctx, &rs[len(rs)-1])
	if !errors.Is(err, semantics.ErrUnknownTopic) || !strings.Contains(err.Error(), "created again") {
		t.Errorf("commit of the old topic's records right after a commit of it: err = %v, want UNKNOWN_TOPIC_OR_PARTITION saying the topic was created again", err)
	}
}

// TestCommitCheckedBeforeOfRecreatedTopicRefused: a consumer that reads nothing
// of a partition checks a commit of it against the partition's high watermark
// and keeps what it read, so that its next commits need no read (one of a
// paused leader's would wait for the election). After the topic was deleted
// and created again with fewer records, a commit within the old high
// watermark is refused all the same: it carries the id of the topic the
// watermark was read of, and the coordinator refuses the old topic's offsets.
func TestCommitCheckedBeforeOfRecreatedTopicRefused(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "rechk", qxd.TopicConfig{Partitions: 1})
	p := qxdtest.NewProducer(t, c)
	for range 5 {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "rechk", Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	cons := qxdtest.NewConsumer(t, c, qxd.Group("g-rechk"), qxd.AutoCommit(0))
	tp := qxd.TopicPartition{Topic: "rechk", Partition: 0}
	if err := cons.CommitOffsets(ctx, map[qxd.TopicPartition]int64{tp: 2}); err != nil {
		t.Fatalf("commit within the high watermark: %v", err)
	}
	if err := cons.CommitOffsets(ctx, map[qxd.TopicPartition]int64{tp: 6}); !errors.Is(err, qxd.ErrOffsetOutOfRange) {
		t.Fatalf("commit past the high watermark (5): %v, want ErrOffsetOutOfRange", err)
	}

	admin := c.Admin()
	if err := admin.DeleteTopic(ctx, "rechk"); err != nil {
		t.Fatal(err)
	}
	qxdtest.CreateTopic(t, c, "rechk", qxd.TopicConfig{Partitions: 1})
	err := cons.CommitOffsets(ctx, map[qxd.TopicPartition]int64{tp: 4})
	if !errors.Is(err, semantics.ErrUnknownTopic) || !strings.Contains(err.Error(), "created again") {
		t.Errorf("commit at 4 of the new, empty topic after a check of the old one's high watermark (5): err = %v, want UNKNOWN_TOPIC_OR_PARTITION saying the topic was created again", err)
	}
	// The old topic's commits went with it: no group, or one without the
	// refused commit.
	got, err := admin.DescribeGroup(ctx, "g-rechk")
	if err != nil && !errors.Is(err, semantics.ErrGroupIDNotFound) {
		t.Fatal(err)
	}
	for _, gp := range got.Partitions {
		if gp.Topic == "rechk" && gp.Committed == 4 {
			t.Errorf("the refused commit was stored: %+v", gp)
		}
	}
}
