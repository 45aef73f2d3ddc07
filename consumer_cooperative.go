// Incremental (cooperative) rebalancing on the member's side, Kafka's KIP-429: a
// member of a group whose assignor is cooperative keeps reading its partitions while
// it rejoins, revokes only those its new assignment leaves out, and rejoins at once
// after revoking, so the group can hand them on. The assignor
// (groups.CooperativeSticky) never gives a partition to a member while another
// member claims it, so a partition has one reader at a time (invariant 3 of
// docs/architecture.md): its old owner stops reading it before it rejoins without
// it, and only the generation after that gives it to its new owner.

package qxd

import (
	"context"
	"slices"
	"time"
)

// takeIncremental applies a cooperative group's assignment: it revokes the
// partitions the member holds and tps leaves out (OnRevoked, after a commit with
// auto-commit), starts those new to it from their committed offsets (OnAssigned),
// and keeps reading the others from where it is. It rejoins at once (returns nil)
// when it revoked any; otherwise it heartbeats until the next rebalance.
func (m *member) takeIncremental(ctx context.Context, tps []TopicPartition, sent time.Time, gen int32) error {
	c := m.c
	c.mu.Lock()
	if m.leaseLost {
		// Poll dropped every partition when the lease ran out during the
		// rebalance: they are lost, and what tps holds starts afresh.
		c.mu.Unlock()
		m.revoke(ctx, false)
		c.mu.Lock()
	}
	owned := slices.Clone(m.assigned)
	// The sync renewed the lease (the coordinator's runs from its arrival): the
	// partitions kept are read on under it while the others are revoked.
	m.leaseEnd = m.lease(sent)
	c.mu.Unlock()
	var revoked, added []TopicPartition
	for _, tp := range owned {
		if !slices.Contains(tps, tp) {
			revoked = append(revoked, tp)
		}
	}
	for _, tp := range tps {
		if !slices.Contains(owned, tp) {
			added = append(added, tp)
		}
	}
	if len(revoked) > 0 {
		m.revokeSome(ctx, revoked)
	}
	if err := m.add(ctx, added, tps, sent, gen); err != nil {
		m.revoke(ctx, true)
		return err
	}
	if len(revoked) > 0 {
		c.c.log.Debug("group partitions revoked: rejoining", "group", m.cfg.id, "generation", gen, "partitions", len(revoked))
		return nil
	}
	return m.heartbeat(ctx)
}

// revokeSome gives up some of the member's partitions in a cooperative rebalance:
// with BlockRebalanceOnPoll it first waits for AllowRebalance; with auto-commit it
// commits them; it calls OnRevoked with them, then stops reading them.
func (m *member) revokeSome(ctx context.Context, tps []TopicPartition) {
	c := m.c
	m.waitAllowRebalance(ctx)
	if m.cfg.autoCommit {
		if err := m.commitPositionsOf(ctx, tps, false); err != nil {
			c.c.log.Debug("commit before revoke failed", "group", m.cfg.id, "err", err)
		}
	}
	if m.cfg.onRevoked != nil {
		m.cfg.onRevoked(ctx, c, slices.Clone(tps))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		if pc, ok := c.parts[tp]; ok {
			pc.halt()
			delete(c.parts, tp)
		}
		delete(m.committed, tp)
	}
	m.assigned = slices.DeleteFunc(m.assigned, func(tp TopicPartition) bool { return slices.Contains(tps, tp) })
}

// add starts reading the partitions a cooperative rebalance added, from their
// committed offsets, and makes all, the member's whole assignment of generation
// gen, its own, with a lease from sent (the sync's send time).
func (m *member) add(ctx context.Context, added, all []TopicPartition, sent time.Time, gen int32) error {
	c := m.c
	var resolved []resolved
	var committed map[TopicPartition]int64
	if len(added) > 0 {
		got, err := m.committedOf(ctx, added)
		if err != nil {
			return err
		}
		as := make([]Assignment, 0, len(added))
		committed = map[TopicPartition]int64{}
		for _, tp := range added {
			o := c.cfg.defaultStart()
			if e, ok := got[tp]; ok {
				o = At(e.Offset)
				committed[tp] = e.Offset
			}
			as = append(as, Assignment{Topic: tp.Topic, Partition: tp.Partition, Offset: o})
		}
		if resolved, err = c.resolveAll(ctx, as, false); err != nil {
			return err
		}
		if m.cfg.onAssigned != nil {
			m.cfg.onAssigned(ctx, c, slices.Clone(added))
		}
	}
	c.mu.Lock()
	m.assigned = slices.Clone(all)
	m.lastAssigned = slices.Clone(all)
	m.generation = gen
	m.leaseEnd = m.lease(sent)
	m.stable = true
	for _, tp := range added {
		if off, ok := committed[tp]; ok {
			m.committed[tp] = off
		} else {
			delete(m.committed, tp)
		}
	}
	c.addLocked(resolved)
	c.mu.Unlock()
	c.c.log.Debug("group assignment", "group", m.cfg.id, "generation", gen, "partitions", len(all))
	c.wake()
	return nil
}
