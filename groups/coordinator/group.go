package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

type group struct {
	c  *Coordinator
	mu sync.Mutex

	id           string
	state        groups.State
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	static       map[string]string // instance id → member id
	rev          uint64
	closed       bool
	genChecked   bool // generation started above stored commits (initGeneration)

	timer      Timer  // rebalance (join phase) timer
	timerToken uint64 // invalidates a stale timer firing
	// initialDelay: an empty group's first join phase waits for more members.
	initialDelay bool
	// notBefore: partitions of removed members may still be delivered until then.
	notBefore time.Time
}

type member struct {
	MemberState
	joinCh   chan joinResult
	syncCh   chan syncResult
	lastSeen time.Time // last request from it: its session runs from here
	leaseEnd time.Time // its partitions may be delivered until then
	session  Timer
	token    uint64
	// syncNotBefore delays a static member's sync until its predecessor's lease ended.
	syncNotBefore time.Time
	syncTimer     Timer
}

type joinResult struct {
	resp groups.JoinResponse
	err  error
}

type syncResult struct {
	assignment []byte
	err        error
}

func (m *member) answerJoin(r groups.JoinResponse, err error) {
	if m.joinCh != nil {
		m.joinCh <- joinResult{r, err}
		m.joinCh = nil
	}
}

func (m *member) answerSync(a []byte, err error) {
	if m.syncCh != nil {
		m.syncCh <- syncResult{a, err}
		m.syncCh = nil
	}
	if m.syncTimer != nil {
		m.syncTimer.Stop()
		m.syncTimer = nil
	}
}

func (m *member) stopTimers() {
	if m.session != nil {
		m.session.Stop()
	}
	if m.syncTimer != nil {
		m.syncTimer.Stop()
	}
}

func newMemberID(clientID string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	if clientID == "" {
		clientID = "member"
	}
	return clientID + "-" + hex.EncodeToString(b[:])
}

func (m *member) protocolMetadata(name string) ([]byte, bool) {
	for _, p := range m.Protocols {
		if p.Name == name {
			return p.Metadata, true
		}
	}
	return nil, false
}

func sameProtocols(a, b []groups.Protocol) bool {
	return slices.EqualFunc(a, b, func(x, y groups.Protocol) bool { return x.Name == y.Name && string(x.Metadata) == string(y.Metadata) })
}

func protocolNames(ps []groups.Protocol) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func (g *group) sortedMemberIDs() []string {
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// prepareRebalanceLocked moves the group to PreparingRebalance: members learn it
// from their next heartbeat and rejoin; the join phase ends when all have rejoined
// or the rebalance timeout passes.
func (g *group) prepareRebalanceLocked(reason string) {
	if g.state == groups.PreparingRebalance {
		if g.timerToken != 0 && len(g.members) > 0 && g.initialDelayPending() {
			g.armTimerLocked(g.c.cfg.InitialRebalanceDelay) // more members keep arriving
		}
		return
	}
	wasEmpty := g.state == groups.Empty
	for _, m := range g.members {
		m.answerSync(nil, semantics.Errorf(semantics.ErrRebalanceInProgress, "group %q is rebalancing: %s", g.id, reason))
	}
	g.state = groups.PreparingRebalance
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.RebalanceTimeout)
	}
	if wasEmpty && g.c.cfg.InitialRebalanceDelay > 0 {
		d = min(d, g.c.cfg.InitialRebalanceDelay)
		g.initialDelay = true
	} else {
		g.initialDelay = false
	}
	g.armTimerLocked(d)
	g.c.log.Info("group rebalancing", "group", g.id, "generation", g.generation, "reason", reason)
}

func (g *group) initialDelayPending() bool { return g.initialDelay }

func (g *group) armTimerLocked(d time.Duration) {
	if g.timer != nil {
		g.timer.Stop()
	}
	g.timerToken++
	token := g.timerToken
	g.timer = g.c.cfg.Clock.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.timerToken != token || g.closed {
			return
		}
		g.onTimerLocked()
	})
}

// onTimerLocked ends a join phase that ran out of time (or finishes the initial
// delay, or the wait for removed members' leases).
func (g *group) onTimerLocked() {
	if g.state != groups.PreparingRebalance {
		return
	}
	g.initialDelay = false
	g.completeJoinLocked(true)
}

// maybeCompleteJoinLocked completes the join phase once every member has rejoined,
// unless the initial delay for an empty group is still running.
func (g *group) maybeCompleteJoinLocked() {
	if g.state != groups.PreparingRebalance || g.initialDelay {
		return
	}
	for _, m := range g.members {
		if m.joinCh == nil {
			return
		}
	}
	g.completeJoinLocked(false)
}

// completeJoinLocked removes members that did not rejoin, waits for their leases to
// end, then starts the next generation and answers every pending join.
func (g *group) completeJoinLocked(timedOut bool) {
	now := g.c.cfg.Clock.Now()
	for id, m := range g.members {
		if m.joinCh != nil {
			continue
		}
		if m.leaseEnd.After(g.notBefore) {
			g.notBefore = m.leaseEnd
		}
		g.removeMemberLocked(id, "did not rejoin in time")
	}
	if g.notBefore.After(now) {
		// A removed member may still be delivering its partitions: start the new
		// generation when its lease has ended.
		g.armTimerLocked(g.notBefore.Sub(now))
		return
	}
	g.generation++
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = groups.Empty, "", ""
		if err := g.persistLocked(); err != nil {
			g.c.log.Warn("group state not saved", "group", g.id, "err", err)
		}
		return
	}
	g.protocol = g.selectProtocolLocked()
	if _, ok := g.members[g.leader]; !ok {
		g.leader = g.sortedMemberIDs()[0]
	}
	g.state = groups.CompletingRebalance
	for _, m := range g.members {
		m.Assignment = nil
	}
	if err := g.persistLocked(); err != nil {
		for _, m := range g.members {
			m.answerJoin(groups.JoinResponse{}, err)
		}
		return
	}
	for _, m := range g.members {
		m.lastSeen = now
		g.scheduleSessionLocked(m)
		m.answerJoin(g.joinResponseLocked(m), nil)
	}
	g.c.log.Info("group generation started", "group", g.id, "generation", g.generation, "members", len(g.members), "protocol", g.protocol)
}

func (g *group) removeMemberLocked(id, reason string) {
	m, ok := g.members[id]
	if !ok {
		return
	}
	m.stopTimers()
	m.answerJoin(groups.JoinResponse{}, semantics.Errorf(semantics.ErrUnknownMemberID, "group %q: member %s removed: %s", g.id, id, reason))
	m.answerSync(nil, semantics.Errorf(semantics.ErrUnknownMemberID, "group %q: member %s removed: %s", g.id, id, reason))
	delete(g.members, id)
	if m.InstanceID != "" && g.static[m.InstanceID] == id {
		delete(g.static, m.InstanceID)
	}
	g.c.log.Info("member removed", "group", g.id, "member", id, "reason", reason)
}

// scheduleSessionLocked (re)starts m's session timer from m.lastSeen.
func (g *group) scheduleSessionLocked(m *member) {
	if m.session != nil {
		m.session.Stop()
	}
	m.token++
	token := m.token
	id := m.MemberID
	due := m.lastSeen.Add(m.SessionTimeout)
	d := due.Sub(g.c.cfg.Clock.Now())
	m.session = g.c.cfg.Clock.AfterFunc(max(d, 0), func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		cur, ok := g.members[id]
		if !ok || cur.token != token || g.closed {
			return
		}
		if now := g.c.cfg.Clock.Now(); now.Sub(due) > sessionLateness(cur.SessionTimeout) {
			// The timer fired long after it was due: this coordinator did not
			// run meanwhile (its process was paused or starved), so the member's
			// heartbeats could not reach it. Give the member a new session
			// rather than remove it for the coordinator's own absence.
			cur.lastSeen = now
			g.scheduleSessionLocked(cur)
			return
		}
		g.onSessionExpiredLocked(cur)
	})
}

// sessionLateness is how late a session timer may fire and still end the session:
// later than that, the coordinator itself was not running (see
// scheduleSessionLocked).
func sessionLateness(session time.Duration) time.Duration {
	return max(2*time.Second, session/4)
}

func (g *group) onSessionExpiredLocked(m *member) {
	if m.joinCh != nil {
		return // waiting in a join phase: the rebalance timeout handles it
	}
	if m.leaseEnd.After(g.notBefore) {
		g.notBefore = m.leaseEnd
	}
	g.removeMemberLocked(m.MemberID, "session timed out")
	switch g.state {
	case groups.Stable, groups.CompletingRebalance:
		g.prepareRebalanceLocked("member " + m.MemberID + " timed out")
		g.maybeCompleteJoinLocked()
	case groups.PreparingRebalance:
		g.maybeCompleteJoinLocked()
	}
	if len(g.members) == 0 && g.state != groups.PreparingRebalance {
		g.state = groups.Empty
		_ = g.persistLocked()
	}
}

func (g *group) checkMemberLocked(memberID, instanceID string, gen int32) (*member, error) {
	if g.closed {
		return nil, errClosed
	}
	if instanceID != "" {
		if cur, ok := g.static[instanceID]; ok && cur != memberID {
			return nil, semantics.Errorf(semantics.ErrFencedInstanceID, "group %q: instance %q now belongs to another member", g.id, instanceID)
		}
	}
	m, ok := g.members[memberID]
	if !ok {
		return nil, semantics.Errorf(semantics.ErrUnknownMemberID, "group %q: member %q is not in the group (it was removed); join again", g.id, memberID)
	}
	if gen != g.generation {
		return m, semantics.Errorf(semantics.ErrIllegalGeneration, "group %q: member %q is at generation %d, the group at %d", g.id, memberID, gen, g.generation)
	}
	return m, nil
}

// requireEmptyLocked fails unless the group has no members.
func (g *group) requireEmptyLocked(op string) error {
	switch n := len(g.members); n {
	case 0:
		return nil
	case 1:
		return semantics.Errorf(semantics.ErrNonEmptyGroup,
			"%s group %q: it has 1 active member; stop it first (a group is changed only while empty)", op, g.id)
	default:
		return semantics.Errorf(semantics.ErrNonEmptyGroup,
			"%s group %q: it has %d active members; stop them first (a group is changed only while empty)", op, g.id, n)
	}
}

// persistLocked writes the group's state with compare-and-set.
func (g *group) persistLocked() error {
	st := GroupState{Group: g.id, State: g.state, Generation: g.generation, ProtocolType: g.protocolType,
		Protocol: g.protocol, Leader: g.leader, Revision: g.rev}
	for _, id := range g.sortedMemberIDs() {
		st.Members = append(st.Members, g.members[id].MemberState)
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.c.cfg.StoreTimeout)
	defer cancel()
	rev, err := g.c.states.SaveGroup(ctx, st)
	if errors.Is(err, ErrDeposed) {
		g.c.log.Warn("group taken over by a newer coordinator; this one stops acting for it", "group", g.id, "err", err)
		g.closeLocked()
		return errClosed
	}
	if err != nil {
		g.c.log.Warn("group state not saved", "group", g.id, "err", err)
		return semantics.Errorf(semantics.ErrNotCoordinator, "group %q: save state: %v; retry", g.id, err)
	}
	g.rev = rev
	return nil
}

// closeLocked stops the group's timers and answers its pending joins and syncs with
// NOT_COORDINATOR; every later request for it gets NOT_COORDINATOR too, so its
// members look for the coordinator again.
func (g *group) closeLocked() {
	g.closed = true
	for _, m := range g.members {
		m.stopTimers()
		m.answerJoin(groups.JoinResponse{}, errClosed)
		m.answerSync(nil, errClosed)
	}
	if g.timer != nil {
		g.timer.Stop()
	}
}
