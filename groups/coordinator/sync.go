package coordinator

import (
	"context"
	"time"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// Sync is Kafka's SyncGroup. The leader's request carries every member's assignment;
// every member's request blocks until it arrives and returns the member's own.
func (c *Coordinator) Sync(ctx context.Context, req groups.SyncRequest) (groups.SyncResponse, error) {
	g, err := c.group(req.Group, false)
	if err != nil {
		return groups.SyncResponse{}, err
	}
	if g == nil {
		return groups.SyncResponse{}, semantics.Errorf(semantics.ErrUnknownMemberID, "group %q does not exist; join it", req.Group)
	}
	ch := make(chan syncResult, 1)
	g.mu.Lock()
	a, done, err := g.syncLocked(req, ch)
	g.mu.Unlock()
	if done || err != nil {
		return groups.SyncResponse{Assignment: a}, err
	}
	select {
	case r := <-ch:
		return groups.SyncResponse{Assignment: r.assignment}, r.err
	case <-ctx.Done():
		return groups.SyncResponse{}, semantics.Errorf(semantics.ErrTimeout, "group %q: sync not completed: %v", req.Group, ctx.Err())
	}
}

func (g *group) syncLocked(req groups.SyncRequest, ch chan syncResult) ([]byte, bool, error) {
	m, err := g.checkMemberLocked(req.MemberID, req.InstanceID, req.Generation)
	if err != nil {
		return nil, true, err
	}
	now := g.c.cfg.Clock.Now()
	m.lastSeen = now
	g.scheduleSessionLocked(m)
	switch g.state {
	case groups.PreparingRebalance:
		return nil, true, semantics.Errorf(semantics.ErrRebalanceInProgress, "group %q is rebalancing; rejoin", g.id)
	case groups.Stable:
		return g.deliverSyncLocked(m, ch, now)
	case groups.CompletingRebalance:
		m.syncCh = ch
		if m.MemberID != g.leader {
			return nil, false, nil
		}
		for id, mm := range g.members {
			mm.Assignment = req.Assignments[id]
		}
		g.state = groups.Stable
		if err := g.persistLocked(); err != nil {
			for _, mm := range g.members {
				mm.answerSync(nil, err)
			}
			if !g.closed { // not taken over by a newer coordinator (persistLocked)
				g.prepareRebalanceLocked("group state not saved")
			}
			return nil, false, nil
		}
		for _, mm := range g.members {
			if mm.syncCh != nil {
				c := mm.syncCh
				mm.syncCh = nil
				g.deliverSyncLocked(mm, c, now)
			}
		}
		g.c.log.Info("group stable", "group", g.id, "generation", g.generation)
		return nil, false, nil
	}
	return nil, true, semantics.Errorf(semantics.ErrUnknownMemberID, "group %q is %s", g.id, g.state)
}

// deliverSyncLocked answers a member's sync with its assignment, now or, for a
// static member whose predecessor may still be delivering, when that lease ends.
func (g *group) deliverSyncLocked(m *member, ch chan syncResult, now time.Time) ([]byte, bool, error) {
	if !m.syncNotBefore.After(now) {
		m.leaseEnd = now.Add(m.SessionTimeout)
		ch <- syncResult{assignment: m.Assignment}
		return m.Assignment, false, nil
	}
	m.syncCh = ch
	id, gen := m.MemberID, g.generation
	m.syncTimer = g.c.cfg.Clock.AfterFunc(m.syncNotBefore.Sub(now), func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		cur, ok := g.members[id]
		if !ok || g.generation != gen || g.state != groups.Stable || cur.syncCh == nil {
			return
		}
		cur.syncNotBefore = time.Time{}
		c := cur.syncCh
		cur.syncCh = nil
		g.deliverSyncLocked(cur, c, g.c.cfg.Clock.Now())
	})
	return nil, false, nil
}
