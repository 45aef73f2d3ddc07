package qxd_test

import (
	"errors"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestTxnOffsetsFencedByGeneration: offsets sent to a transaction by a group
// member of an older generation (a zombie member: its partitions moved in a
// rebalance it has not noticed) are refused with ILLEGAL_GENERATION, and by a
// member the group does not know with UNKNOWN_MEMBER_ID, as Kafka's
// TxnOffsetCommit (KIP-447) does; else its transaction would commit offsets for
// records the partition's new owner reads again. The current member's are
// taken, and stored when the transaction commits.
func TestTxnOffsetsFencedByGeneration(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	qxdtest.CreateTopic(t, c, "fence-in", qxd.TopicConfig{Partitions: 2})
	qxdtest.CreateTopic(t, c, "fence-out", qxd.TopicConfig{Partitions: 1})
	a := qxdtest.NewConsumer(t, c, qxd.Group("fence-g"), qxd.AutoCommit(0))
	if err := a.Subscribe(ctx, "fence-in"); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, a, 2)
	oldGen, oldMember := a.Generation()

	// A second member joins: a new generation.
	b := qxdtest.NewConsumer(t, qxdtest.Connect(t, n), qxd.Group("fence-g"), qxd.AutoCommit(0))
	if err := b.Subscribe(ctx, "fence-in"); err != nil {
		t.Fatal(err)
	}
	for {
		d, err := c.Admin().DescribeGroup(ctx, "fence-g")
		if err == nil && d.Generation > oldGen && d.State == "Stable" && len(d.Members) == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no second generation: %+v %v", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitAssigned(t, b, 1)

	in := qxd.TopicPartition{Topic: "fence-in", Partition: 0}
	p := newTxnProducer(t, c, "fence")
	beginValues(ctx, t, p, "fence-out", "1")
	err := p.SendOffsetsToTransaction(ctx, qxd.GroupMemberID{Group: "fence-g", GenerationID: oldGen, MemberID: oldMember},
		map[qxd.TopicPartition]qxd.OffsetAndMetadata{in: {Offset: 5}})
	if !errors.Is(err, qxd.ErrIllegalGeneration) {
		t.Errorf("offsets of generation %d after the group moved on: %v, want ILLEGAL_GENERATION", oldGen, err)
	}
	gen, _ := b.Generation()
	err = p.SendOffsetsToTransaction(ctx, qxd.GroupMemberID{Group: "fence-g", GenerationID: gen, MemberID: "nobody"},
		map[qxd.TopicPartition]qxd.OffsetAndMetadata{in: {Offset: 6}})
	if !errors.Is(err, qxd.ErrUnknownMemberID) {
		t.Errorf("offsets of an unknown member: %v, want UNKNOWN_MEMBER_ID", err)
	}
	if err := p.SendOffsetsToTransaction(ctx, b, map[qxd.TopicPartition]qxd.OffsetAndMetadata{in: {Offset: 7}}); err != nil {
		t.Fatalf("offsets of the current member: %v", err)
	}
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := b.Committed(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if o := got[in]; o.Offset != 7 {
		t.Fatalf("committed %v after the commit, want offset 7 (the current member's)", got)
	}
}
