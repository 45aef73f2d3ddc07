package coordinator

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// DescribeGroup is Kafka's DescribeGroups for one group. A group with committed
// offsets and no members is Empty; one with neither does not exist.
func (c *Coordinator) DescribeGroup(ctx context.Context, id string) (groups.GroupDescription, error) {
	g, err := c.group(id, false)
	if err != nil {
		return groups.GroupDescription{}, err
	}
	if g == nil {
		commits, err := c.offsets.List(ctx, id)
		if err != nil {
			return groups.GroupDescription{}, err
		}
		if len(commits) == 0 {
			return groups.GroupDescription{}, semantics.Errorf(semantics.ErrGroupIDNotFound, "group %q does not exist: list groups with 'qxd group list'", id)
		}
		return groups.GroupDescription{Group: id, State: groups.Empty, Members: []groups.MemberDescription{}}, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	d := groups.GroupDescription{Group: id, State: g.state, Generation: g.generation, ProtocolType: g.protocolType,
		Protocol: g.protocol, Leader: g.leader, Members: []groups.MemberDescription{}}
	for _, mid := range g.sortedMemberIDs() {
		m := g.members[mid]
		md := groups.MemberDescription{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost,
			Partitions: []semantics.TopicPartition{}, SessionTimeout: m.SessionTimeout}
		if a, err := groups.DecodeAssignment(m.Assignment); err == nil && a.Partitions != nil {
			md.Partitions = a.Partitions
		}
		d.Members = append(d.Members, md)
	}
	return d, nil
}

// ListGroups lists groups with members or committed offsets.
func (c *Coordinator) ListGroups(ctx context.Context) ([]groups.GroupSummary, error) {
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	withOffsets, err := c.offsets.Groups(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]groups.GroupSummary{}
	for _, id := range withOffsets {
		seen[id] = groups.GroupSummary{Group: id, State: groups.Empty}
	}
	c.mu.Lock()
	gs := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		gs = append(gs, g)
	}
	c.mu.Unlock()
	for _, g := range gs {
		g.mu.Lock()
		if g.state != groups.Dead {
			seen[g.id] = groups.GroupSummary{Group: g.id, State: g.state, Members: len(g.members)}
		}
		g.mu.Unlock()
	}
	out := make([]groups.GroupSummary, 0, len(seen))
	for _, s := range seen {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b groups.GroupSummary) int { return strings.Compare(a.Group, b.Group) })
	return out, nil
}

// ResetOffsets sets a group's committed offsets, only while it has no members (as
// Kafka's kafka-consumer-groups --reset-offsets). A coordinator deposed without
// noticing yet may take a group for empty that has members again under its
// successor: the reset first reads the claim (StateStore.CheckClaim), and the
// store writes each offset by compare-and-set, refusing one over a commit made
// through a newer coordinator (offsets.Store.WithEpoch), so that a claim stored
// after that read is met too. Either makes it NOT_COORDINATOR.
func (c *Coordinator) ResetOffsets(ctx context.Context, req groups.ResetRequest) error {
	id := req.Group
	g, err := c.group(id, false)
	if err != nil {
		return err
	}
	if err := c.checkClaim(ctx, "reset offsets of", id); err != nil {
		return err
	}
	if g != nil {
		g.mu.Lock()
		err := g.requireEmptyLocked("seek")
		g.mu.Unlock()
		if err != nil {
			return err
		}
	}
	o := make(map[semantics.TopicPartition]int64, len(req.Offsets))
	for _, e := range req.Offsets {
		o[semantics.TopicPartition{Topic: e.Topic, Partition: e.Partition}] = e.Offset
	}
	return c.deposedIf(ctx, id, c.offsets.Reset(ctx, id, o))
}

// checkClaim reads the claim key (StateStore.CheckClaim) before a request that
// writes over what another coordinator may have stored (a delete, a reset): a
// newer claim closes the coordinator and gives NOT_COORDINATOR, a failed read
// NOT_COORDINATOR to retry.
func (c *Coordinator) checkClaim(ctx context.Context, op, id string) error {
	if err := c.states.CheckClaim(ctx); err != nil {
		if errors.Is(err, ErrDeposed) {
			return c.claimFailed(id, err)
		}
		return semantics.Errorf(semantics.ErrNotCoordinator, "%s group %q: %v; retry", op, id, err)
	}
	return nil
}

// deposedIf passes err on; when it is NOT_COORDINATOR from the offsets store (a
// commit stored through a newer coordinator met), it first reads the claim, and
// a newer one closes the coordinator (claimFailed).
func (c *Coordinator) deposedIf(ctx context.Context, id string, err error) error {
	if errors.Is(err, semantics.ErrNotCoordinator) {
		if cerr := c.states.CheckClaim(ctx); errors.Is(cerr, ErrDeposed) {
			c.claimFailed(id, cerr)
		}
	}
	return err
}

// DeleteGroup deletes a group without members and its committed offsets. A
// coordinator deposed without noticing yet must not purge what its successor
// stored: it reads the claim first (StateStore.CheckClaim), and each purge is
// conditional on the revision this coordinator read: the state's on the one it
// saved or loaded last, each commit's on the one its listing read. A claim
// stored after the read, with a state or a commit stored through it since, makes
// the delete fail with NOT_COORDINATOR and close the coordinator; a commit
// stored since by this coordinator (a group without members committing) makes
// it fail with REQUEST_TIMED_OUT, to retry. The state is purged first: a
// successor saves every group it loads, so a delete after its load deletes
// nothing.
func (c *Coordinator) DeleteGroup(ctx context.Context, id string) error {
	g, err := c.group(id, false)
	if err != nil {
		return err
	}
	if err := c.checkClaim(ctx, "delete", id); err != nil {
		return err
	}
	var rev uint64
	restore := func() {}
	if g != nil {
		g.mu.Lock()
		if err := g.requireEmptyLocked("delete"); err != nil {
			g.mu.Unlock()
			return err
		}
		was := g.state
		g.state = groups.Dead
		rev = g.rev
		g.mu.Unlock()
		restore = func() {
			g.mu.Lock()
			g.state = was
			g.mu.Unlock()
		}
	}
	commits, err := c.offsets.List(ctx, id)
	if err != nil {
		restore()
		return err
	}
	if g == nil && len(commits) == 0 {
		return semantics.Errorf(semantics.ErrGroupIDNotFound, "group %q does not exist", id)
	}
	if err := c.states.DeleteGroup(ctx, id, rev); err != nil {
		restore()
		if errors.Is(err, ErrDeposed) {
			return c.claimFailed(id, err)
		}
		if errors.Is(err, ErrStateChanged) {
			return semantics.Errorf(semantics.ErrTimeout, "delete group %q: %v; retry", id, err)
		}
		return err
	}
	// The state is gone: a delete sent again after the commits' purges failed
	// finds the group as one of commits alone.
	c.mu.Lock()
	if c.groups[id] == g {
		delete(c.groups, id)
	}
	c.mu.Unlock()
	return c.deposedIf(ctx, id, c.offsets.DeleteCommits(ctx, id, commits))
}

// DeleteOffsets is Kafka's OffsetDelete on the group coordinator: it purges the
// group's commits of parts, those it has, each at the revision it was read at,
// after reading the claim, as DeleteGroup does; a commit stored through a newer
// coordinator makes it NOT_COORDINATOR. The caller checks that no member
// consumes the partitions.
func (c *Coordinator) DeleteOffsets(ctx context.Context, id string, parts []semantics.TopicPartition) error {
	if _, err := c.group(id, false); err != nil {
		return err
	}
	if err := c.checkClaim(ctx, "delete offsets of", id); err != nil {
		return err
	}
	commits, err := c.offsets.List(ctx, id)
	if err != nil {
		return err
	}
	del := map[semantics.TopicPartition]offsets.Committed{}
	for _, tp := range parts {
		if cm, ok := commits[tp]; ok {
			del[tp] = cm
		}
	}
	return c.deposedIf(ctx, id, c.offsets.DeleteCommits(ctx, id, del))
}

// claimFailed answers a request that met a newer coordinator's claim
// (ErrDeposed): the coordinator closes, and the request gets NOT_COORDINATOR.
// Other errors are returned as they are.
func (c *Coordinator) claimFailed(group string, err error) error {
	if !errors.Is(err, ErrDeposed) {
		return err
	}
	c.log.Warn("groups taken over by a newer coordinator; this one stops acting for them", "group", group, "err", err)
	c.Close()
	return errClosed
}
