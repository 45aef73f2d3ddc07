package coordinator

import (
	"context"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// Heartbeat is Kafka's Heartbeat. In a stable group it renews the member's session
// and lease; during a rebalance it returns ErrRebalanceInProgress, telling the member
// to give up its partitions and rejoin.
func (c *Coordinator) Heartbeat(ctx context.Context, req groups.HeartbeatRequest) error {
	g, err := c.group(req.Group, false)
	if err != nil {
		return err
	}
	if g == nil {
		return semantics.Errorf(semantics.ErrUnknownMemberID, "group %q does not exist; join it", req.Group)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	m, err := g.checkMemberLocked(req.MemberID, req.InstanceID, req.Generation)
	if m != nil {
		m.lastSeen = c.cfg.Clock.Now()
		g.scheduleSessionLocked(m)
	}
	if err != nil {
		return err
	}
	switch g.state {
	case groups.PreparingRebalance:
		return semantics.Errorf(semantics.ErrRebalanceInProgress, "group %q is rebalancing; rejoin", g.id)
	case groups.Stable:
		if m.syncCh == nil && !m.syncNotBefore.After(m.lastSeen) {
			m.leaseEnd = m.lastSeen.Add(m.SessionTimeout)
		}
	}
	return nil
}
