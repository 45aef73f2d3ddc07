package coordinator

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/qxd-io/qxd/groups"
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
// Kafka's kafka-consumer-groups --reset-offsets).
func (c *Coordinator) ResetOffsets(ctx context.Context, req groups.ResetRequest) error {
	id := req.Group
	g, err := c.group(id, false)
	if err != nil {
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
	return c.offsets.Reset(ctx, id, o)
}

// DeleteGroup deletes a group without members and its committed offsets. It
// first checks that no newer coordinator claimed the groups (StateStore.CheckClaim):
// a deposed coordinator that has not noticed yet would purge commits and state its
// successor stored. Such a delete closes the coordinator and fails with
// NOT_COORDINATOR, deleting nothing.
func (c *Coordinator) DeleteGroup(ctx context.Context, id string) error {
	g, err := c.group(id, false)
	if err != nil {
		return err
	}
	if err := c.states.CheckClaim(ctx); err != nil {
		if errors.Is(err, ErrDeposed) {
			return c.claimFailed(id, err)
		}
		return semantics.Errorf(semantics.ErrNotCoordinator, "delete group %q: %v; retry", id, err)
	}
	if g != nil {
		g.mu.Lock()
		if err := g.requireEmptyLocked("delete"); err != nil {
			g.mu.Unlock()
			return err
		}
		g.state = groups.Dead
		g.mu.Unlock()
	} else {
		commits, err := c.offsets.List(ctx, id)
		if err != nil {
			return err
		}
		if len(commits) == 0 {
			return semantics.Errorf(semantics.ErrGroupIDNotFound, "group %q does not exist", id)
		}
	}
	if err := c.offsets.Delete(ctx, id); err != nil && !errors.Is(err, semantics.ErrGroupIDNotFound) {
		return err
	}
	if err := c.states.DeleteGroup(ctx, id); err != nil {
		return c.claimFailed(id, err)
	}
	c.mu.Lock()
	delete(c.groups, id)
	c.mu.Unlock()
	return nil
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
