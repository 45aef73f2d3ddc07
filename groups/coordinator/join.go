package coordinator

import (
	"context"
	"time"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// joinSlack is how long a join may wait beyond the member's rebalance and session
// timeouts: a join phase ends by the rebalance timeout, plus the wait for a removed
// member's lease.
const joinSlack = 5 * time.Second

// Join is Kafka's JoinGroup: it blocks until the group's join phase completes (or ctx
// ends, or the member's rebalance timeout plus its session timeout and joinSlack
// pass) and returns the new generation; the leader gets every member's metadata.
func (c *Coordinator) Join(ctx context.Context, req groups.JoinRequest) (groups.JoinResponse, error) {
	if err := semantics.ValidateGroupID(req.Group); err != nil {
		return groups.JoinResponse{}, err
	}
	if req.RebalanceTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.RebalanceTimeout+req.SessionTimeout+joinSlack)
		defer cancel()
	}
	switch {
	case req.SessionTimeout < c.cfg.MinSessionTimeout || req.SessionTimeout > c.cfg.MaxSessionTimeout:
		return groups.JoinResponse{}, semantics.Errorf(semantics.ErrInvalidSessionTimeout,
			"group %q: session timeout %v is outside %v..%v", req.Group, req.SessionTimeout, c.cfg.MinSessionTimeout, c.cfg.MaxSessionTimeout)
	case req.RebalanceTimeout <= 0:
		req.RebalanceTimeout = req.SessionTimeout
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return groups.JoinResponse{}, semantics.Errorf(semantics.ErrInconsistentGroupProtocol, "group %q: join without protocol type or protocols", req.Group)
	}
	g, err := c.group(req.Group, true)
	if err != nil {
		return groups.JoinResponse{}, err
	}
	if err := c.initGeneration(ctx, g); err != nil {
		return groups.JoinResponse{}, err
	}
	ch := make(chan joinResult, 1)
	g.mu.Lock()
	resp, done, err := g.joinLocked(req, ch)
	g.mu.Unlock()
	if done || err != nil {
		return resp, err
	}
	select {
	case r := <-ch:
		return r.resp, r.err
	case <-ctx.Done():
		return groups.JoinResponse{}, semantics.Errorf(semantics.ErrTimeout, "group %q: join not completed: %v", req.Group, ctx.Err())
	}
}

// initGeneration starts a group that has no stored state above the highest
// generation its committed offsets carry, so that the offsets store, which refuses
// commits from generations older than the stored ones, keeps accepting the group's.
func (c *Coordinator) initGeneration(ctx context.Context, g *group) error {
	g.mu.Lock()
	fresh := g.rev == 0 && g.generation == 0 && !g.genChecked
	g.mu.Unlock()
	if !fresh {
		return nil
	}
	commits, err := c.offsets.List(ctx, g.id)
	if err != nil {
		return semantics.Errorf(semantics.ErrCoordinatorNotAvailable, "group %q: read committed offsets: %v", g.id, err)
	}
	var top int32
	for _, cm := range commits {
		top = max(top, cm.Generation)
	}
	g.mu.Lock()
	if g.rev == 0 && !g.genChecked {
		g.generation = max(g.generation, top)
		g.genChecked = true
	}
	g.mu.Unlock()
	return nil
}

// joinLocked handles a join. done means resp is the answer now; otherwise the answer
// comes on ch when the join phase completes.
func (g *group) joinLocked(req groups.JoinRequest, ch chan joinResult) (groups.JoinResponse, bool, error) {
	if g.closed {
		return groups.JoinResponse{}, true, errClosed
	}
	if g.state == groups.Dead {
		return groups.JoinResponse{}, true, semantics.Errorf(semantics.ErrCoordinatorNotAvailable, "group %q is being deleted; retry", g.id)
	}
	if g.protocolType != "" && len(g.members) > 0 && req.ProtocolType != g.protocolType {
		return groups.JoinResponse{}, true, semantics.Errorf(semantics.ErrInconsistentGroupProtocol,
			"group %q has protocol type %q, the member sent %q", g.id, g.protocolType, req.ProtocolType)
	}
	if !g.supportsLocked(req) {
		return groups.JoinResponse{}, true, semantics.Errorf(semantics.ErrInconsistentGroupProtocol,
			"group %q: the member's assignors %v have none in common with the other members'", g.id, protocolNames(req.Protocols))
	}
	now := g.c.cfg.Clock.Now()

	if req.MemberID == "" && req.JoinKey != "" {
		// The first join sent again: its answer was lost (see JoinRequest.JoinKey).
		for id, m := range g.members {
			if m.JoinKey == req.JoinKey {
				req.MemberID = id
				break
			}
		}
	}
	if req.MemberID == "" && req.InstanceID != "" {
		if oldID, ok := g.static[req.InstanceID]; ok {
			return g.staticRejoinLocked(req, oldID, ch, now)
		}
	}
	if req.MemberID == "" {
		m := &member{MemberState: MemberState{
			MemberID: newMemberID(req.ClientID), InstanceID: req.InstanceID, ClientID: req.ClientID, ClientHost: req.ClientHost, JoinKey: req.JoinKey,
			SessionTimeout: req.SessionTimeout, RebalanceTimeout: req.RebalanceTimeout, Protocols: req.Protocols,
		}, lastSeen: now, leaseEnd: now}
		g.members[m.MemberID] = m
		if m.InstanceID != "" {
			g.static[m.InstanceID] = m.MemberID
		}
		if g.protocolType == "" {
			g.protocolType = req.ProtocolType
		}
		m.joinCh = ch
		g.scheduleSessionLocked(m)
		g.prepareRebalanceLocked("member " + m.MemberID + " joined")
		g.maybeCompleteJoinLocked()
		return groups.JoinResponse{}, false, nil
	}
	m, ok := g.members[req.MemberID]
	if !ok {
		return groups.JoinResponse{}, true, semantics.Errorf(semantics.ErrUnknownMemberID, "group %q: member %q is not in the group (it was removed); join again", g.id, req.MemberID)
	}
	if req.InstanceID != "" && g.static[req.InstanceID] != req.MemberID {
		return groups.JoinResponse{}, true, semantics.Errorf(semantics.ErrFencedInstanceID, "group %q: instance %q now belongs to another member", g.id, req.InstanceID)
	}
	m.lastSeen = now
	g.scheduleSessionLocked(m)
	changed := !sameProtocols(m.Protocols, req.Protocols)
	m.Protocols = req.Protocols
	m.SessionTimeout, m.RebalanceTimeout = req.SessionTimeout, req.RebalanceTimeout
	// The lease stands: a member of a cooperative group keeps reading its
	// partitions while it rejoins (an eager one gave them up, and its lease only
	// makes a wait for it, were it removed, longer than needed).
	switch g.state {
	case groups.PreparingRebalance:
		m.answerJoin(groups.JoinResponse{}, semantics.Errorf(semantics.ErrRebalanceInProgress, "superseded by a newer join"))
		m.joinCh = ch
		g.maybeCompleteJoinLocked()
		return groups.JoinResponse{}, false, nil
	case groups.CompletingRebalance, groups.Stable:
		if !changed && m.MemberID != g.leader && g.state == groups.CompletingRebalance {
			return g.joinResponseLocked(m), true, nil
		}
		// A rejoin in Stable means the member dropped its partitions: rebalance so
		// they are assigned again.
		m.joinCh = ch
		g.prepareRebalanceLocked("member " + m.MemberID + " rejoined")
		g.maybeCompleteJoinLocked()
		return groups.JoinResponse{}, false, nil
	}
	m.joinCh = ch
	g.prepareRebalanceLocked("member " + m.MemberID + " rejoined")
	g.maybeCompleteJoinLocked()
	return groups.JoinResponse{}, false, nil
}

// staticRejoinLocked handles a static member coming back under a new member id: it
// replaces (fences) the old member id and keeps its assignment without a rebalance
// when the group is stable and the member's subscription is unchanged (for an
// Unleased member: when the group would select the same assignor).
func (g *group) staticRejoinLocked(req groups.JoinRequest, oldID string, ch chan joinResult, now time.Time) (groups.JoinResponse, bool, error) {
	old := g.members[oldID]
	m := &member{MemberState: old.MemberState, lastSeen: now, leaseEnd: now}
	m.MemberID = newMemberID(req.ClientID)
	m.ClientID, m.ClientHost = req.ClientID, req.ClientHost
	m.SessionTimeout, m.RebalanceTimeout = req.SessionTimeout, req.RebalanceTimeout
	// The old process may still deliver until its lease ends (a Kafka client is
	// not fenced at delivery, and has no lease to wait for).
	if old.leaseEnd.After(now) && !req.Unleased {
		m.syncNotBefore = old.leaseEnd
	}
	old.stopTimers()
	old.answerJoin(groups.JoinResponse{}, semantics.Errorf(semantics.ErrFencedInstanceID, "instance %q rejoined as a new member", req.InstanceID))
	old.answerSync(nil, semantics.Errorf(semantics.ErrFencedInstanceID, "instance %q rejoined as a new member", req.InstanceID))
	delete(g.members, oldID)
	g.members[m.MemberID] = m
	g.static[req.InstanceID] = m.MemberID
	if g.leader == oldID {
		g.leader = m.MemberID
	}
	g.scheduleSessionLocked(m)
	changed := !sameProtocols(old.Protocols, req.Protocols)
	m.Protocols = req.Protocols
	if req.Unleased {
		changed = g.selectProtocolLocked() != g.protocol
	}
	if g.state == groups.Stable && !changed {
		if err := g.persistLocked(); err != nil {
			return groups.JoinResponse{}, true, err
		}
		resp := g.joinResponseLocked(m)
		resp.SkipAssignment = true
		return resp, true, nil
	}
	m.joinCh = ch
	g.prepareRebalanceLocked("static member " + req.InstanceID + " rejoined")
	g.maybeCompleteJoinLocked()
	return groups.JoinResponse{}, false, nil
}

// supportsLocked reports whether req shares an assignor with every other member.
func (g *group) supportsLocked(req groups.JoinRequest) bool {
	for _, p := range req.Protocols {
		ok := true
		for id, m := range g.members {
			if id == req.MemberID || (req.InstanceID != "" && m.InstanceID == req.InstanceID) {
				continue
			}
			if _, has := m.protocolMetadata(p.Name); !has {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// selectProtocolLocked picks the assignor every member supports, preferring the
// leader's (or else any member's) order of preference.
func (g *group) selectProtocolLocked() string {
	ids := g.sortedMemberIDs()
	if g.leader != "" {
		ids = append([]string{g.leader}, ids...)
	}
	for _, id := range ids {
		m, ok := g.members[id]
		if !ok {
			continue
		}
		for _, p := range m.Protocols {
			all := true
			for _, o := range g.members {
				if _, has := o.protocolMetadata(p.Name); !has {
					all = false
					break
				}
			}
			if all {
				return p.Name
			}
		}
	}
	return ""
}

func (g *group) joinResponseLocked(m *member) groups.JoinResponse {
	resp := groups.JoinResponse{Generation: g.generation, Protocol: g.protocol, Leader: g.leader, MemberID: m.MemberID}
	if m.MemberID == g.leader {
		for _, id := range g.sortedMemberIDs() {
			o := g.members[id]
			md, _ := o.protocolMetadata(g.protocol)
			resp.Members = append(resp.Members, groups.JoinedMember{MemberID: o.MemberID, InstanceID: o.InstanceID, Metadata: md})
		}
	}
	return resp
}
