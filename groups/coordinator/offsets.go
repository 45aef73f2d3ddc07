package coordinator

import (
	"context"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// CommitOffsets is Kafka's OffsetCommit: the member must be in the group's current
// generation (ErrIllegalGeneration, ErrUnknownMemberID otherwise), and not between a
// join and its assignment (ErrRebalanceInProgress). Generation -1 without a member
// commits for a group with no members. An offset of -1 or -2 clears the
// partition's position, with the same checks and the same fenced write as any
// commit (offsets.Store.Commit).
func (c *Coordinator) CommitOffsets(ctx context.Context, req groups.CommitRequest) error {
	g, err := c.group(req.Group, false)
	if err != nil {
		return err
	}
	if req.Generation < 0 && req.MemberID == "" {
		if g != nil {
			g.mu.Lock()
			n := len(g.members)
			g.mu.Unlock()
			if n > 0 {
				return semantics.Errorf(semantics.ErrNonEmptyGroup,
					"group %q has %d active members: commit as one of them, or stop them first", req.Group, n)
			}
		}
		return c.offsets.Commit(ctx, req.Group, -1, "", commits(req.Offsets))
	}
	if g == nil {
		return semantics.Errorf(semantics.ErrUnknownMemberID, "group %q does not exist; join it", req.Group)
	}
	g.mu.Lock()
	m, err := g.checkMemberLocked(req.MemberID, req.InstanceID, req.Generation)
	if err == nil && g.state == groups.CompletingRebalance {
		err = semantics.Errorf(semantics.ErrRebalanceInProgress, "group %q is completing a rebalance; commit after the assignment", g.id)
	}
	if m != nil {
		m.lastSeen = c.cfg.Clock.Now()
		g.scheduleSessionLocked(m)
	}
	gen := g.generation
	g.mu.Unlock()
	if err != nil {
		return err
	}
	return c.offsets.Commit(ctx, req.Group, gen, req.MemberID, commits(req.Offsets))
}

// commits puts a commit request's entries in the offsets store's form.
func commits(es []semantics.OffsetEntry) map[semantics.TopicPartition]offsets.Commit {
	o := make(map[semantics.TopicPartition]offsets.Commit, len(es))
	for _, e := range es {
		o[semantics.TopicPartition{Topic: e.Topic, Partition: e.Partition}] = offsets.Commit{Offset: e.Offset, Metadata: e.Metadata, TopicID: e.TopicID}
	}
	return o
}

// FetchOffsets is Kafka's OffsetFetch: the group's committed offsets of the
// requested partitions (all of them when none are named), in no particular order.
// A partition whose commit cleared its position (offsets.Committed.Logical) is
// left out, as one never committed, unless req.Logical asks for it.
func (c *Coordinator) FetchOffsets(ctx context.Context, req groups.FetchRequest) ([]semantics.OffsetEntry, error) {
	if err := semantics.ValidateGroupID(req.Group); err != nil {
		return nil, err
	}
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	var got map[semantics.TopicPartition]offsets.Committed
	var err error
	if len(req.Partitions) == 0 {
		got, err = c.offsets.List(ctx, req.Group)
	} else {
		got, err = c.offsets.Fetch(ctx, req.Group, req.Partitions)
	}
	if err != nil {
		return nil, err
	}
	out := make([]semantics.OffsetEntry, 0, len(got))
	for tp, cm := range got {
		if cm.Logical() && !req.Logical {
			continue
		}
		out = append(out, semantics.OffsetEntry{Topic: tp.Topic, Partition: tp.Partition, Offset: cm.Offset,
			Metadata: cm.Metadata, Generation: cm.Generation, Member: cm.Member, Time: cm.Time, TopicID: cm.TopicID})
	}
	return out, nil
}
