package groups

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// Config is the coordinator's configuration. Start from DefaultConfig.
type Config struct {
	// Clock is the time source. Default SystemClock.
	Clock Clock
	// Logger receives the coordinator's logs. Default: discard.
	Logger *slog.Logger
	// MinSessionTimeout and MaxSessionTimeout bound members' session timeouts
	// (Kafka's group.min/max.session.timeout.ms). Defaults 100ms and 30m.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is how long an empty group waits for more members before
	// its first generation (Kafka's group.initial.rebalance.delay.ms). Default 300ms.
	InitialRebalanceDelay time.Duration
	// StoreTimeout bounds each write of group state. Default 10s.
	StoreTimeout time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Clock:                 SystemClock{},
		MinSessionTimeout:     100 * time.Millisecond,
		MaxSessionTimeout:     30 * time.Minute,
		InitialRebalanceDelay: 300 * time.Millisecond,
		StoreTimeout:          10 * time.Second,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Clock == nil:
		return errors.New("groups: config has no clock")
	case c.MinSessionTimeout <= 0 || c.MaxSessionTimeout < c.MinSessionTimeout:
		return fmt.Errorf("groups: session timeout bounds %v..%v are not valid", c.MinSessionTimeout, c.MaxSessionTimeout)
	case c.InitialRebalanceDelay < 0:
		return fmt.Errorf("groups: initial rebalance delay %v is negative", c.InitialRebalanceDelay)
	case c.StoreTimeout <= 0:
		return fmt.Errorf("groups: store timeout %v must be positive", c.StoreTimeout)
	}
	return nil
}

// Coordinator runs Kafka's group state machine for every group. One coordinator is
// active per cluster at a time (the server makes sure); it keeps groups in memory
// and writes every change of membership, generation or assignment to its
// StateStore, from which Load takes groups over after a failover.
//
// Invariant 3 of the design, at most one member receiving a partition's records at
// any moment, rests on leases: a member may deliver records only until its last
// successful heartbeat's send time plus its session timeout, and the coordinator
// hands a removed member's partitions to others only after its last successful
// heartbeat's arrival time plus its session timeout. A member that rejoins gives up
// its partitions before rejoining, so it has no lease left to wait for.
type Coordinator struct {
	cfg     Config
	log     *slog.Logger
	states  StateStore
	offsets OffsetStore

	mu     sync.Mutex
	groups map[string]*group
	closed bool
}

// NewCoordinator returns a coordinator with no groups loaded.
func NewCoordinator(cfg Config, states StateStore, offs OffsetStore) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{cfg: cfg, log: log, states: states, offsets: offs, groups: map[string]*group{}}, nil
}

// ErrCoordinatorClosed wraps semantics.ErrNotCoordinator for requests that meet a
// closed coordinator.
var errClosed = semantics.Errorf(semantics.ErrNotCoordinator, "this node stopped coordinating groups; retry")

// Load takes over every stored group. Members get a fresh session (as if they had
// heartbeated now), and their leases are assumed to run for a full session from now.
// Groups caught in a rebalance start it again.
func (c *Coordinator) Load(ctx context.Context) error {
	states, err := c.states.LoadGroups(ctx)
	if err != nil {
		return fmt.Errorf("groups: load: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Clock.Now()
	for _, st := range states {
		g := c.newGroupLocked(st.Group)
		g.state, g.generation, g.protocolType, g.protocol, g.leader, g.rev = st.State, st.Generation, st.ProtocolType, st.Protocol, st.Leader, st.Revision
		for _, ms := range st.Members {
			m := &member{MemberState: ms, lastSeen: now, leaseEnd: now.Add(ms.SessionTimeout)}
			g.members[m.MemberID] = m
			if m.InstanceID != "" {
				g.static[m.InstanceID] = m.MemberID
			}
		}
		g.mu.Lock()
		for _, m := range g.members {
			g.scheduleSessionLocked(m)
		}
		if g.state == PreparingRebalance || g.state == CompletingRebalance {
			g.state = Stable // so that prepareRebalance starts it afresh
			g.prepareRebalanceLocked("coordinator takeover during a rebalance")
		}
		g.mu.Unlock()
	}
	c.log.Info("groups loaded", "groups", len(states))
	return nil
}

// Close stops every timer and answers pending joins and syncs with NOT_COORDINATOR.
func (c *Coordinator) Close() {
	c.mu.Lock()
	c.closed = true
	gs := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		gs = append(gs, g)
	}
	c.mu.Unlock()
	for _, g := range gs {
		g.mu.Lock()
		g.closed = true
		for _, m := range g.members {
			m.stopTimers()
			m.answerJoin(JoinResponse{}, errClosed)
			m.answerSync(nil, errClosed)
		}
		if g.timer != nil {
			g.timer.Stop()
		}
		g.mu.Unlock()
	}
}

func (c *Coordinator) newGroupLocked(id string) *group {
	g := &group{c: c, id: id, state: Empty, members: map[string]*member{}, static: map[string]string{}}
	c.groups[id] = g
	return g
}

// group returns the group, creating it (Empty) when create is set.
func (c *Coordinator) group(id string, create bool) (*group, error) {
	if err := semantics.ValidateGroupID(id); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	g, ok := c.groups[id]
	if !ok && create {
		g = c.newGroupLocked(id)
	}
	return g, nil
}

type group struct {
	c  *Coordinator
	mu sync.Mutex

	id           string
	state        State
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
	resp JoinResponse
	err  error
}

type syncResult struct {
	assignment []byte
	err        error
}

func (m *member) answerJoin(r JoinResponse, err error) {
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

func sameProtocols(a, b []Protocol) bool {
	return slices.EqualFunc(a, b, func(x, y Protocol) bool { return x.Name == y.Name && string(x.Metadata) == string(y.Metadata) })
}

// joinSlack is how long a join may wait beyond the member's rebalance and session
// timeouts: a join phase ends by the rebalance timeout, plus the wait for a removed
// member's lease.
const joinSlack = 5 * time.Second

// Join is Kafka's JoinGroup: it blocks until the group's join phase completes (or ctx
// ends, or the member's rebalance timeout plus its session timeout and joinSlack
// pass) and returns the new generation; the leader gets every member's metadata.
func (c *Coordinator) Join(ctx context.Context, req JoinRequest) (JoinResponse, error) {
	if err := semantics.ValidateGroupID(req.Group); err != nil {
		return JoinResponse{}, err
	}
	if req.RebalanceTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.RebalanceTimeout+req.SessionTimeout+joinSlack)
		defer cancel()
	}
	switch {
	case req.SessionTimeout < c.cfg.MinSessionTimeout || req.SessionTimeout > c.cfg.MaxSessionTimeout:
		return JoinResponse{}, semantics.Errorf(semantics.ErrInvalidSessionTimeout,
			"group %q: session timeout %v is outside %v..%v", req.Group, req.SessionTimeout, c.cfg.MinSessionTimeout, c.cfg.MaxSessionTimeout)
	case req.RebalanceTimeout <= 0:
		req.RebalanceTimeout = req.SessionTimeout
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return JoinResponse{}, semantics.Errorf(semantics.ErrInconsistentGroupProtocol, "group %q: join without protocol type or protocols", req.Group)
	}
	g, err := c.group(req.Group, true)
	if err != nil {
		return JoinResponse{}, err
	}
	if err := c.initGeneration(ctx, g); err != nil {
		return JoinResponse{}, err
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
		return JoinResponse{}, semantics.Errorf(semantics.ErrTimeout, "group %q: join not completed: %v", req.Group, ctx.Err())
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
func (g *group) joinLocked(req JoinRequest, ch chan joinResult) (JoinResponse, bool, error) {
	if g.closed {
		return JoinResponse{}, true, errClosed
	}
	if g.state == Dead {
		return JoinResponse{}, true, semantics.Errorf(semantics.ErrCoordinatorNotAvailable, "group %q is being deleted; retry", g.id)
	}
	if g.protocolType != "" && len(g.members) > 0 && req.ProtocolType != g.protocolType {
		return JoinResponse{}, true, semantics.Errorf(semantics.ErrInconsistentGroupProtocol,
			"group %q has protocol type %q, the member sent %q", g.id, g.protocolType, req.ProtocolType)
	}
	if !g.supportsLocked(req) {
		return JoinResponse{}, true, semantics.Errorf(semantics.ErrInconsistentGroupProtocol,
			"group %q: the member's assignors %v have none in common with the other members'", g.id, protocolNames(req.Protocols))
	}
	now := g.c.cfg.Clock.Now()

	if req.MemberID == "" && req.InstanceID != "" {
		if oldID, ok := g.static[req.InstanceID]; ok {
			return g.staticRejoinLocked(req, oldID, ch, now)
		}
	}
	if req.MemberID == "" {
		m := &member{MemberState: MemberState{
			MemberID: newMemberID(req.ClientID), InstanceID: req.InstanceID, ClientID: req.ClientID,
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
		return JoinResponse{}, false, nil
	}
	m, ok := g.members[req.MemberID]
	if !ok {
		return JoinResponse{}, true, semantics.Errorf(semantics.ErrUnknownMemberID, "group %q: member %q is not in the group (it was removed); join again", g.id, req.MemberID)
	}
	if req.InstanceID != "" && g.static[req.InstanceID] != req.MemberID {
		return JoinResponse{}, true, semantics.Errorf(semantics.ErrFencedInstanceID, "group %q: instance %q now belongs to another member", g.id, req.InstanceID)
	}
	m.lastSeen = now
	g.scheduleSessionLocked(m)
	changed := !sameProtocols(m.Protocols, req.Protocols)
	m.Protocols = req.Protocols
	m.SessionTimeout, m.RebalanceTimeout = req.SessionTimeout, req.RebalanceTimeout
	// The member gave up its partitions before rejoining.
	m.leaseEnd = now
	switch g.state {
	case PreparingRebalance:
		m.answerJoin(JoinResponse{}, semantics.Errorf(semantics.ErrRebalanceInProgress, "superseded by a newer join"))
		m.joinCh = ch
		g.maybeCompleteJoinLocked()
		return JoinResponse{}, false, nil
	case CompletingRebalance, Stable:
		if !changed && m.MemberID != g.leader && g.state == CompletingRebalance {
			return g.joinResponseLocked(m), true, nil
		}
		// A rejoin in Stable means the member dropped its partitions: rebalance so
		// they are assigned again.
		m.joinCh = ch
		g.prepareRebalanceLocked("member " + m.MemberID + " rejoined")
		g.maybeCompleteJoinLocked()
		return JoinResponse{}, false, nil
	}
	m.joinCh = ch
	g.prepareRebalanceLocked("member " + m.MemberID + " rejoined")
	g.maybeCompleteJoinLocked()
	return JoinResponse{}, false, nil
}

// staticRejoinLocked handles a static member coming back under a new member id: it
// replaces (fences) the old member id and keeps its assignment without a rebalance
// when the group is stable and the member's subscription is unchanged.
func (g *group) staticRejoinLocked(req JoinRequest, oldID string, ch chan joinResult, now time.Time) (JoinResponse, bool, error) {
	old := g.members[oldID]
	m := &member{MemberState: old.MemberState, lastSeen: now, leaseEnd: now}
	m.MemberID = newMemberID(req.ClientID)
	m.ClientID = req.ClientID
	m.SessionTimeout, m.RebalanceTimeout = req.SessionTimeout, req.RebalanceTimeout
	// The old process may still deliver until its lease ends.
	if old.leaseEnd.After(now) {
		m.syncNotBefore = old.leaseEnd
	}
	old.stopTimers()
	old.answerJoin(JoinResponse{}, semantics.Errorf(semantics.ErrFencedInstanceID, "instance %q rejoined as a new member", req.InstanceID))
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
	if g.state == Stable && !changed {
		if err := g.persistLocked(); err != nil {
			return JoinResponse{}, true, err
		}
		resp := g.joinResponseLocked(m)
		resp.SkipAssignment = true
		return resp, true, nil
	}
	m.joinCh = ch
	g.prepareRebalanceLocked("static member " + req.InstanceID + " rejoined")
	g.maybeCompleteJoinLocked()
	return JoinResponse{}, false, nil
}

func protocolNames(ps []Protocol) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// supportsLocked reports whether req shares an assignor with every other member.
func (g *group) supportsLocked(req JoinRequest) bool {
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

func (g *group) sortedMemberIDs() []string {
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (g *group) joinResponseLocked(m *member) JoinResponse {
	resp := JoinResponse{Generation: g.generation, Protocol: g.protocol, Leader: g.leader, MemberID: m.MemberID}
	if m.MemberID == g.leader {
		for _, id := range g.sortedMemberIDs() {
			o := g.members[id]
			md, _ := o.protocolMetadata(g.protocol)
			resp.Members = append(resp.Members, JoinedMember{MemberID: o.MemberID, InstanceID: o.InstanceID, Metadata: md})
		}
	}
	return resp
}

// prepareRebalanceLocked moves the group to PreparingRebalance: members learn it
// from their next heartbeat and rejoin; the join phase ends when all have rejoined
// or the rebalance timeout passes.
func (g *group) prepareRebalanceLocked(reason string) {
	if g.state == PreparingRebalance {
		if g.timerToken != 0 && len(g.members) > 0 && g.initialDelayPending() {
			g.armTimerLocked(g.c.cfg.InitialRebalanceDelay) // more members keep arriving
		}
		return
	}
	wasEmpty := g.state == Empty
	for _, m := range g.members {
		m.answerSync(nil, semantics.Errorf(semantics.ErrRebalanceInProgress, "group %q is rebalancing: %s", g.id, reason))
	}
	g.state = PreparingRebalance
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
	if g.state != PreparingRebalance {
		return
	}
	g.initialDelay = false
	g.completeJoinLocked(true)
}

// maybeCompleteJoinLocked completes the join phase once every member has rejoined,
// unless the initial delay for an empty group is still running.
func (g *group) maybeCompleteJoinLocked() {
	if g.state != PreparingRebalance || g.initialDelay {
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
		g.state, g.protocol, g.leader = Empty, "", ""
		if err := g.persistLocked(); err != nil {
			g.c.log.Warn("group state not saved", "group", g.id, "err", err)
		}
		return
	}
	g.protocol = g.selectProtocolLocked()
	if _, ok := g.members[g.leader]; !ok {
		g.leader = g.sortedMemberIDs()[0]
	}
	g.state = CompletingRebalance
	for _, m := range g.members {
		m.Assignment = nil
	}
	if err := g.persistLocked(); err != nil {
		for _, m := range g.members {
			m.answerJoin(JoinResponse{}, err)
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
	m.answerJoin(JoinResponse{}, semantics.Errorf(semantics.ErrUnknownMemberID, "group %q: member %s removed: %s", g.id, id, reason))
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
	d := m.lastSeen.Add(m.SessionTimeout).Sub(g.c.cfg.Clock.Now())
	m.session = g.c.cfg.Clock.AfterFunc(max(d, 0), func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		cur, ok := g.members[id]
		if !ok || cur.token != token || g.closed {
			return
		}
		g.onSessionExpiredLocked(cur)
	})
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
	case Stable, CompletingRebalance:
		g.prepareRebalanceLocked("member " + m.MemberID + " timed out")
		g.maybeCompleteJoinLocked()
	case PreparingRebalance:
		g.maybeCompleteJoinLocked()
	}
	if len(g.members) == 0 && g.state != PreparingRebalance {
		g.state = Empty
		_ = g.persistLocked()
	}
}

// Sync is Kafka's SyncGroup. The leader's request carries every member's assignment;
// every member's request blocks until it arrives and returns the member's own.
func (c *Coordinator) Sync(ctx context.Context, req SyncRequest) (SyncResponse, error) {
	g, err := c.group(req.Group, false)
	if err != nil {
		return SyncResponse{}, err
	}
	if g == nil {
		return SyncResponse{}, semantics.Errorf(semantics.ErrUnknownMemberID, "group %q does not exist; join it", req.Group)
	}
	ch := make(chan syncResult, 1)
	g.mu.Lock()
	a, done, err := g.syncLocked(req, ch)
	g.mu.Unlock()
	if done || err != nil {
		return SyncResponse{Assignment: a}, err
	}
	select {
	case r := <-ch:
		return SyncResponse{Assignment: r.assignment}, r.err
	case <-ctx.Done():
		return SyncResponse{}, semantics.Errorf(semantics.ErrTimeout, "group %q: sync not completed: %v", req.Group, ctx.Err())
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

func (g *group) syncLocked(req SyncRequest, ch chan syncResult) ([]byte, bool, error) {
	m, err := g.checkMemberLocked(req.MemberID, req.InstanceID, req.Generation)
	if err != nil {
		return nil, true, err
	}
	now := g.c.cfg.Clock.Now()
	m.lastSeen = now
	g.scheduleSessionLocked(m)
	switch g.state {
	case PreparingRebalance:
		return nil, true, semantics.Errorf(semantics.ErrRebalanceInProgress, "group %q is rebalancing; rejoin", g.id)
	case Stable:
		return g.deliverSyncLocked(m, ch, now)
	case CompletingRebalance:
		m.syncCh = ch
		if m.MemberID != g.leader {
			return nil, false, nil
		}
		for id, mm := range g.members {
			mm.Assignment = req.Assignments[id]
		}
		g.state = Stable
		if err := g.persistLocked(); err != nil {
			for _, mm := range g.members {
				mm.answerSync(nil, err)
			}
			g.prepareRebalanceLocked("group state not saved")
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
		if !ok || g.generation != gen || g.state != Stable || cur.syncCh == nil {
			return
		}
		cur.syncNotBefore = time.Time{}
		c := cur.syncCh
		cur.syncCh = nil
		g.deliverSyncLocked(cur, c, g.c.cfg.Clock.Now())
	})
	return nil, false, nil
}

// Heartbeat is Kafka's Heartbeat. In a stable group it renews the member's session
// and lease; during a rebalance it returns ErrRebalanceInProgress, telling the member
// to give up its partitions and rejoin.
func (c *Coordinator) Heartbeat(ctx context.Context, req HeartbeatRequest) error {
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
	case PreparingRebalance:
		return semantics.Errorf(semantics.ErrRebalanceInProgress, "group %q is rebalancing; rejoin", g.id)
	case Stable:
		if m.syncCh == nil && !m.syncNotBefore.After(m.lastSeen) {
			m.leaseEnd = m.lastSeen.Add(m.SessionTimeout)
		}
	}
	return nil
}

// Leave is Kafka's LeaveGroup: the member is removed and the group rebalances. A
// static member with KeepMembership only gives up its lease.
func (c *Coordinator) Leave(ctx context.Context, req LeaveRequest) error {
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
		g.state, g.protocol, g.leader = Empty, "", ""
		return g.persistLocked()
	}
	switch g.state {
	case Stable, CompletingRebalance:
		g.prepareRebalanceLocked("member " + id + " left")
	}
	g.maybeCompleteJoinLocked()
	return nil
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
	if err != nil {
		g.c.log.Warn("group state not saved", "group", g.id, "err", err)
		return semantics.Errorf(semantics.ErrNotCoordinator, "group %q: save state: %v; retry", g.id, err)
	}
	g.rev = rev
	return nil
}

// CommitOffsets is Kafka's OffsetCommit: the member must be in the group's current
// generation (ErrIllegalGeneration, ErrUnknownMemberID otherwise), and not between a
// join and its assignment (ErrRebalanceInProgress). Generation -1 without a member
// commits for a group with no members.
func (c *Coordinator) CommitOffsets(ctx context.Context, req CommitRequest) error {
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
	if err == nil && g.state == CompletingRebalance {
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
func (c *Coordinator) FetchOffsets(ctx context.Context, req FetchRequest) ([]semantics.OffsetEntry, error) {
	if err := semantics.ValidateGroupID(req.Group); err != nil {
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
		out = append(out, semantics.OffsetEntry{Topic: tp.Topic, Partition: tp.Partition, Offset: cm.Offset,
			Metadata: cm.Metadata, Generation: cm.Generation, Member: cm.Member, Time: cm.Time, TopicID: cm.TopicID})
	}
	return out, nil
}

// DescribeGroup is Kafka's DescribeGroups for one group. A group with committed
// offsets and no members is Empty; one with neither does not exist.
func (c *Coordinator) DescribeGroup(ctx context.Context, id string) (GroupDescription, error) {
	g, err := c.group(id, false)
	if err != nil {
		return GroupDescription{}, err
	}
	if g == nil {
		commits, err := c.offsets.List(ctx, id)
		if err != nil {
			return GroupDescription{}, err
		}
		if len(commits) == 0 {
			return GroupDescription{}, semantics.Errorf(semantics.ErrGroupIDNotFound, "group %q does not exist: list groups with 'qxd group list'", id)
		}
		return GroupDescription{Group: id, State: Empty, Members: []MemberDescription{}}, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	d := GroupDescription{Group: id, State: g.state, Generation: g.generation, ProtocolType: g.protocolType,
		Protocol: g.protocol, Leader: g.leader, Members: []MemberDescription{}}
	for _, mid := range g.sortedMemberIDs() {
		m := g.members[mid]
		md := MemberDescription{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID,
			Partitions: []semantics.TopicPartition{}, SessionTimeout: m.SessionTimeout}
		if a, err := DecodeAssignment(m.Assignment); err == nil && a.Partitions != nil {
			md.Partitions = a.Partitions
		}
		d.Members = append(d.Members, md)
	}
	return d, nil
}

// ListGroups lists groups with members or committed offsets.
func (c *Coordinator) ListGroups(ctx context.Context) ([]GroupSummary, error) {
	withOffsets, err := c.offsets.Groups(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]GroupSummary{}
	for _, id := range withOffsets {
		seen[id] = GroupSummary{Group: id, State: Empty}
	}
	c.mu.Lock()
	gs := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		gs = append(gs, g)
	}
	c.mu.Unlock()
	for _, g := range gs {
		g.mu.Lock()
		if g.state != Dead {
			seen[g.id] = GroupSummary{Group: g.id, State: g.state, Members: len(g.members)}
		}
		g.mu.Unlock()
	}
	out := make([]GroupSummary, 0, len(seen))
	for _, s := range seen {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b GroupSummary) int { return cmpString(a.Group, b.Group) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
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

// ResetOffsets sets a group's committed offsets, only while it has no members (as
// Kafka's kafka-consumer-groups --reset-offsets).
func (c *Coordinator) ResetOffsets(ctx context.Context, req ResetRequest) error {
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

// DeleteGroup deletes a group without members and its committed offsets.
func (c *Coordinator) DeleteGroup(ctx context.Context, id string) error {
	g, err := c.group(id, false)
	if err != nil {
		return err
	}
	if g != nil {
		g.mu.Lock()
		if err := g.requireEmptyLocked("delete"); err != nil {
			g.mu.Unlock()
			return err
		}
		g.state = Dead
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
		return err
	}
	c.mu.Lock()
	delete(c.groups, id)
	c.mu.Unlock()
	return nil
}
