package coordinator

import (
	"context"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// Leave is Kafka's LeaveGroup: the member is removed and the group rebalances. A
// static member with KeepMembership only gives up its lease.
func (c *Coordinator) Leave(ctx context.Context, req groups.LeaveRequest) error {
	g, err := c.group(req.Group, false)
	if err != nil {
		return err
	}
	if g == nil {
		return semantics.Errorf(semantics.ErrUnknownMemberID, "group %q does not exist", req.Group)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	id := req.MemberID
	if id == "" && req.InstanceID != "" {
		id = g.static[req.InstanceID]
	}
	m, err := g.checkMemberLocked(id, req.InstanceID, g.generation)
	if err != nil {
		return err
	}
	now := c.cfg.Clock.Now()
	m.leaseEnd = now
	if req.KeepMembership {
		return nil
	}
	g.removeMemberLocked(id, "left the group")
	if len(g.members) == 0 {
		if g.timer != nil {
			g.timer.Stop()
		}
		g.generation++
		g.state, g.protocol, g.leader = groups.Empty, "", ""
		return g.persistLocked()
	}
	switch g.state {
	case groups.Stable, groups.CompletingRebalance:
		g.prepareRebalanceLocked("member " + id + " left")
	}
	g.maybeCompleteJoinLocked()
	return nil
}
