package qxd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// member is the consumer's side of its group: join, sync, heartbeat, commit.
type member struct {
	c   *Consumer
	cfg groupConfig

	topics []string // guarded by c.mu
	// regex, when set, is the subscription's patterns: topics follows what they
	// match, and the member rejoins when it changes.
	regex  *topicMatcher
	rejoin chan struct{} // the subscription changed: rejoin
	// cooperative: every assignor of the member rebalances incrementally, so it
	// keeps its partitions while it rejoins (Kafka's COOPERATIVE protocol).
	cooperative bool
	cancel      context.CancelFunc
	done        chan struct{}
	polled      chan struct{} // a Poll started: a member that left for not polling rejoins

	stopOnce  sync.Once
	stopAfter func() bool // stops the subscription context's watch; guarded by c.mu

	// Guarded by c.mu.
	memberID   string
	generation int32
	// joinKey names the first join (no memberID yet) until one is answered: a
	// join that failed when the connection was lost may have made the member,
	// and the next attempt must join as it (groups.JoinRequest.JoinKey).
	joinKey  string
	assigned []TopicPartition
	// lastAssigned is the latest assignment, still claimed for stickiness after
	// an eager rebalance revoked it.
	lastAssigned []TopicPartition
	leaseEnd     time.Time // records may be delivered until then
	stable       bool      // has an assignment of the current generation
	leaseLost    bool      // Poll dropped the partitions because the lease ran out
	fatal        error
	committed    map[TopicPartition]int64
	lastPoll     time.Time // when the application last called Poll
	// dropped holds, with auto-commit, the positions of the partitions Poll dropped
	// when the lease ran out, for a commit once the coordinator answers again.
	dropped map[TopicPartition]OffsetAndMetadata

	// testPauseHeartbeats cuts the member off from its coordinator (no heartbeats,
	// no rejoin) while it keeps polling, for fencing tests.
	testPauseHeartbeats bool
}

func (m *member) cutOff() bool {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	return m.testPauseHeartbeats
}

// Subscribe joins the consumer's group for topics; the coordinator's rebalances decide
// which partitions Poll returns. Subscribe returns at once; the first assignment
// arrives in the background (see OnAssigned). Calling it again changes the topics.
//
// ctx bounds the membership: when it ends, the member commits (with auto-commit)
// what Poll returned and leaves the group, as Close does, and Poll returns an error
// wrapping ctx's until Subscribe is called again. A member whose application stops
// calling Poll leaves the group after MaxPollInterval.
func (c *Consumer) Subscribe(ctx context.Context, topics ...string) error {
	if c.cfg.group.id == "" {
		return ErrNotInGroup
	}
	if len(topics) == 0 {
		return semantics.Errorf(semantics.ErrInvalidRequest, "subscribe to group %q: no topics given", c.cfg.group.id)
	}
	if err := c.c.authorizeTopic(ctx, semantics.OpGroup, c.cfg.group.id); err != nil {
		return err
	}
	for _, t := range topics {
		if err := c.c.authorizeTopic(ctx, semantics.OpConsume, t); err != nil {
			return err
		}
		if _, err := c.c.topic(ctx, t); err != nil {
			return err
		}
	}
	topics = slices.Clone(topics)
	slices.Sort(topics)
	return c.subscribe(ctx, topics, nil)
}

// subscribe starts a member for topics; with regex, topics are what its patterns
// match now, and the member follows them.
func (c *Consumer) subscribe(ctx context.Context, topics []string, regex *topicMatcher) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrConsumerClosed
	}
	old := c.member
	c.mu.Unlock()
	memberID := ""
	if old != nil {
		old.stop(ctx, false)
		c.mu.Lock()
		memberID = old.memberID
		c.mu.Unlock()
	}
	m := &member{c: c, cfg: c.cfg.group, topics: topics, done: make(chan struct{}), polled: make(chan struct{}, 1),
		memberID: memberID, committed: map[TopicPartition]int64{}, lastPoll: time.Now(), cooperative: true,
		regex: regex, rejoin: make(chan struct{}, 1)}
	for _, a := range m.cfg.assignors {
		m.cooperative = m.cooperative && groups.IsCooperative(a)
	}
	mctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	c.mu.Lock()
	c.member = m
	c.mu.Unlock()
	go m.run(mctx)
	stopAfter := context.AfterFunc(ctx, func() { m.endSubscription(ctx) })
	c.mu.Lock()
	m.stopAfter = stopAfter
	c.mu.Unlock()
	return nil
}

// endSubscription ends the membership when the context given to Subscribe ends.
func (m *member) endSubscription(sub context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(sub), consumerCloseTimeout)
	defer cancel()
	m.stop(ctx, true)
	c := m.c
	c.mu.Lock()
	if m.fatal == nil {
		m.fatal = fmt.Errorf("group %q: the member left the group: the context given to Subscribe ended (%w): call Subscribe again to rejoin",
			m.cfg.id, context.Cause(sub))
	}
	c.mu.Unlock()
	c.wake()
}

// errPollTimeout ends a generation whose member left the group because the
// application did not call Poll within the max poll interval.
var errPollTimeout = errors.New("the application did not poll within the max poll interval")

// pollStartedLocked records that the application called Poll. Called with c.mu
// held.
func (m *member) pollStartedLocked(now time.Time) {
	m.lastPoll = now
	select {
	case m.polled <- struct{}{}:
	default:
	}
}

// leaveUntilPoll leaves the group after the application stopped polling, and
// waits for its next Poll (or ctx's end) to join again.
func (m *member) leaveUntilPoll(ctx context.Context) {
	c := m.c
	c.mu.Lock()
	req := groups.LeaveRequest{Group: m.cfg.id, MemberID: m.memberID, InstanceID: m.cfg.instanceID,
		KeepMembership: m.cfg.instanceID != ""}
	left := time.Now()
	polledSince := m.lastPoll.After(left)
	m.memberID = ""
	c.mu.Unlock()
	c.c.log.Warn("group member left the group: the application did not poll within the max poll interval",
		"group", m.cfg.id, "member", req.MemberID, "err", fmt.Sprintf("max poll interval %v", m.cfg.maxPollInterval))
	if req.MemberID != "" {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _ = c.c.groupRequest(lctx, semantics.GroupLeave, req, 5*time.Second)
		cancel()
	}
	if polledSince {
		return
	}
	select {
	case <-m.polled:
	case <-ctx.Done():
	}
}

// run is the member's life: join, sync, heartbeat until the group rebalances, repeat.
func (m *member) run(ctx context.Context) {
	defer close(m.done)
	if m.regex != nil {
		wctx, cancel := context.WithCancel(ctx)
		watched := make(chan struct{})
		defer func() { cancel(); <-watched }()
		go func() {
			defer close(watched)
			m.c.watchTopics(wctx, m.regex, m.regex.counts, m.topicsChanged)
		}()
	}
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := m.generationLoop(ctx)
		if errors.Is(err, errPollTimeout) {
			m.leaveUntilPoll(ctx)
			err = nil
		}
		if err == nil || ctx.Err() != nil {
			backoff = 50 * time.Millisecond
			continue
		}
		switch {
		case errors.Is(err, semantics.ErrFencedInstanceID), errors.Is(err, semantics.ErrInconsistentGroupProtocol),
			errors.Is(err, semantics.ErrInvalidSessionTimeout), errors.Is(err, semantics.ErrInvalidGroupID),
			errors.Is(err, semantics.ErrUnknownTopic), errors.Is(err, semantics.ErrOffsetOutOfRange),
			errors.Is(err, semantics.ErrTopicAuthorizationFailed), errors.Is(err, semantics.ErrGroupAuthorizationFailed):
			// Kafka's NoOffsetForPartition and the like: retrying cannot help.
			m.c.mu.Lock()
			m.fatal = err
			m.c.mu.Unlock()
			m.c.wake()
			return
		case errors.Is(err, semantics.ErrUnknownMemberID):
			// Removed from the group: a cooperative member, which kept its
			// partitions while rejoining, has lost them.
			m.revoke(ctx, false)
			m.c.mu.Lock()
			m.memberID = ""
			m.c.mu.Unlock()
		case errors.Is(err, semantics.ErrIllegalGeneration):
			m.revoke(ctx, false) // as above: the group moved on without it
		}
		m.c.c.log.Debug("group member retrying", "group", m.cfg.id, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// generationLoop joins, syncs, takes the assignment and heartbeats until the member
// must rejoin. It returns nil for an ordinary rebalance.
func (m *member) generationLoop(ctx context.Context) error {
	c := m.c
	for m.cutOff() {
		// A test cut the member off from its coordinator: it cannot rejoin.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.mu.Lock()
	// For a cooperative assignor the member claims what it holds: the assignor
	// withholds those partitions from others. For an eager one, a member that
	// revoked everything before rejoining claims its last assignment, for the
	// sticky assignor to keep it in place.
	held := slices.Clone(m.assigned)
	last := held
	if len(held) == 0 {
		last = slices.Clone(m.lastAssigned)
	}
	gen := m.generation
	memberID := m.memberID
	var key string
	if memberID == "" {
		if m.joinKey == "" {
			m.joinKey = joinKey()
		}
		key = m.joinKey
	}
	topics := slices.Clone(m.topics)
	c.mu.Unlock()
	req := groups.JoinRequest{Group: m.cfg.id, MemberID: memberID, InstanceID: m.cfg.instanceID, ClientID: c.c.cfg.clientID,
		SessionTimeout: m.cfg.sessionTimeout, RebalanceTimeout: m.cfg.rebalanceTimeout, ProtocolType: groups.ConsumerProtocolType}
	for _, a := range m.cfg.assignors {
		owned := last
		if groups.IsCooperative(a) {
			owned = held
		}
		md := groups.EncodeMetadata(groups.ConsumerMetadata{Topics: topics, Owned: owned, Generation: gen})
		req.Protocols = append(req.Protocols, groups.Protocol{Name: a, Metadata: md})
	}
	req.JoinKey = key
	resp, err := c.c.groupRequestResent(ctx, semantics.GroupJoin, req, m.cfg.rebalanceTimeout+m.cfg.sessionTimeout+10*time.Second)
	if err != nil {
		return err
	}
	join := resp.Join
	c.mu.Lock()
	m.memberID, m.generation, m.joinKey = join.MemberID, join.Generation, ""
	c.mu.Unlock()

	sync := groups.SyncRequest{Group: m.cfg.id, MemberID: join.MemberID, InstanceID: m.cfg.instanceID, Generation: join.Generation}
	if join.Leader == join.MemberID && !join.SkipAssignment {
		sync.Assignments, err = m.assign(ctx, join)
		if err != nil {
			return err
		}
	}
	sent := time.Now()
	resp, err = c.c.groupRequestResent(ctx, semantics.GroupSync, sync, m.cfg.rebalanceTimeout+m.cfg.sessionTimeout+10*time.Second)
	if err != nil {
		return err
	}
	a, err := groups.DecodeAssignment(resp.Sync.Assignment)
	if err != nil {
		return err
	}
	if m.cooperative {
		return m.takeIncremental(ctx, a.Partitions, sent, join.Generation)
	}
	if err := m.take(ctx, a.Partitions, sent, join.Generation); err != nil {
		m.revoke(ctx, true)
		return err
	}
	return m.heartbeat(ctx)
}

// joinKey returns a new key for a member's first join (member.joinKey).
func joinKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// lease is how long after a request's send time the member may deliver records: its
// session timeout less a tenth, for clock rate differences and delays.
func (m *member) lease(sent time.Time) time.Time {
	return sent.Add(m.cfg.sessionTimeout - m.cfg.sessionTimeout/10)
}

// assign runs the group's assignor as the leader.
func (m *member) assign(ctx context.Context, join *groups.JoinResponse) (map[string][]byte, error) {
	assignor, err := groups.AssignorByName(join.Protocol)
	if err != nil {
		return nil, err
	}
	subs := make([]groups.MemberSubscription, 0, len(join.Members))
	parts := map[string]int32{}
	for _, jm := range join.Members {
		md, err := groups.DecodeMetadata(jm.Metadata)
		if err != nil {
			return nil, err
		}
		subs = append(subs, groups.MemberSubscription{MemberID: jm.MemberID, InstanceID: jm.InstanceID,
			Topics: md.Topics, Owned: md.Owned, Generation: md.Generation})
		for _, t := range md.Topics {
			if _, ok := parts[t]; ok {
				continue
			}
			meta, err := m.c.c.topic(ctx, t)
			if err != nil {
				if errors.Is(err, semantics.ErrUnknownTopic) {
					continue // deleted: nothing to assign
				}
				return nil, err
			}
			parts[t] = meta.Config.Partitions
		}
	}
	out := map[string][]byte{}
	for id, tps := range assignor.Assign(subs, parts) {
		out[id] = groups.EncodeAssignment(groups.ConsumerAssignment{Partitions: tps})
	}
	return out, nil
}

// take starts reading an assignment from the committed offsets.
func (m *member) take(ctx context.Context, tps []TopicPartition, sent time.Time, gen int32) error {
	c := m.c
	committed, err := m.committedOf(ctx, tps)
	if err != nil && len(tps) > 0 {
		return err
	}
	var as []Assignment
	for _, tp := range tps {
		o := c.cfg.defaultStart()
		if e, ok := committed[tp]; ok {
			o = At(e.Offset)
		}
		as = append(as, Assignment{Topic: tp.Topic, Partition: tp.Partition, Offset: o})
	}
	resolved, err := c.resolveAll(ctx, as, false)
	if err != nil {
		return err
	}
	if m.cfg.onAssigned != nil {
		m.cfg.onAssigned(ctx, c, slices.Clone(tps))
	}
	c.mu.Lock()
	m.assigned = slices.Clone(tps)
	m.lastAssigned = slices.Clone(tps)
	m.generation = gen
	m.leaseEnd = m.lease(sent)
	m.stable = true
	for _, tp := range tps {
		if e, ok := committed[tp]; ok {
			m.committed[tp] = e.Offset
		} else {
			delete(m.committed, tp)
		}
	}
	c.replaceLocked(resolved)
	c.mu.Unlock()
	c.c.log.Debug("group assignment", "group", m.cfg.id, "generation", gen, "partitions", len(tps))
	c.wake()
	return nil
}

// committedOf reads the committed offsets of partitions the member was given. A
// read-committed member asks for stable offsets, as Kafka's consumer does
// (require_stable): while a transaction not yet completed holds the offset of
// one of them it waits, heartbeating so that it keeps its place in the group,
// rather than start from the offset committed before that transaction and read
// again what it consumed. A rebalance or a fence meanwhile ends the wait with
// its error.
func (m *member) committedOf(ctx context.Context, tps []TopicPartition) (map[TopicPartition]semantics.OffsetEntry, error) {
	c := m.c
	if c.cfg.isolation != ReadCommitted {
		return c.c.fetchCommitted(ctx, m.cfg.id, tps)
	}
	last := time.Now()
	return c.c.fetchStable(ctx, m.cfg.id, tps, func(ctx context.Context) error {
		if time.Since(last) < m.cfg.heartbeatInterval {
			return nil
		}
		last = time.Now()
		c.mu.Lock()
		req := groups.HeartbeatRequest{Group: m.cfg.id, MemberID: m.memberID, InstanceID: m.cfg.instanceID, Generation: m.generation}
		c.mu.Unlock()
		_, err := c.c.groupHeartbeat(ctx, req, m.cfg.heartbeatInterval)
		if errors.Is(err, semantics.ErrRebalanceInProgress) || errors.Is(err, semantics.ErrUnknownMemberID) ||
			errors.Is(err, semantics.ErrIllegalGeneration) || errors.Is(err, semantics.ErrFencedInstanceID) {
			return err
		}
		return nil // the coordinator may be failing over: the fetch retries too
	})
}

// heartbeatAttempt bounds one heartbeat: a heartbeat sent while the coordinator
// moves (its node paused or killed, the groups bucket electing a new leader)
// can be lost without an answer.
const heartbeatAttempt = time.Second

// heartbeatRetry is the first wait before a failed heartbeat is sent again; it
// doubles with each failure in a row, up to heartbeatAttempt.
const heartbeatRetry = 100 * time.Millisecond

// heartbeat keeps the member's session and lease alive and auto-commits, until the
// group rebalances (nil) or the member is out (an error).
//
// A heartbeat that fails (no coordinator, or no answer within heartbeatAttempt)
// is sent again after heartbeatRetry, backing off, rather than at the next
// interval: the lease runs from the last heartbeat answered, and a member whose
// lease ran out while the coordinator moved drops its partitions and rejoins,
// which rebalances the whole group; retried, the first heartbeat the new
// coordinator can answer renews it. A heartbeat still unanswered when a
// coordinator starts (the one it went to went silent) is sent again at once
// (Client.groupHeartbeat), not after its attempt.
func (m *member) heartbeat(ctx context.Context) error {
	c := m.c
	hb := time.NewTicker(m.cfg.heartbeatInterval)
	defer hb.Stop()
	var retry <-chan time.Time
	retryWait := heartbeatRetry
	var commitC <-chan time.Time
	if m.cfg.autoCommit {
		t := time.NewTicker(m.cfg.autoCommitInterval)
		defer t.Stop()
		commitC = t.C
	}
	// An auto-commit runs beside the heartbeats, one at a time. A commit the
	// coordinator cannot store (its node does not reach the offsets bucket's
	// leader: a cut between two nodes) waits up to the request timeout, longer
	// than the lease a heartbeat keeps; the heartbeats must go on meanwhile, or the
	// member drops its partitions though its coordinator answers. Every other
	// commit of the loop, and its return, waits for it (settle): commits are
	// sent in order.
	var committing chan struct{} // closed when the running auto-commit ends
	settle := func() {
		if committing != nil {
			<-committing
			committing = nil
		}
	}
	defer settle()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.rejoin:
			// The subscription changed: rejoin with it.
			settle()
			if !m.cooperative {
				m.revoke(ctx, true)
			}
			return nil
		case <-commitC:
			if committing != nil {
				select {
				case <-committing:
				default:
					continue // the last one still waits for its answer
				}
			}
			done := make(chan struct{})
			committing = done
			go func() {
				defer close(done)
				if err := m.commitPositions(ctx, false); err != nil {
					c.c.log.Debug("auto-commit failed", "group", m.cfg.id, "err", err)
				}
			}()
			continue
		case <-hb.C:
		case <-retry:
		}
		retry = nil
		c.mu.Lock()
		idle := time.Since(m.lastPoll)
		c.mu.Unlock()
		if idle > m.cfg.maxPollInterval {
			settle()
			m.revoke(ctx, false)
			return errPollTimeout
		}
		c.mu.Lock()
		paused := m.testPauseHeartbeats
		req := groups.HeartbeatRequest{Group: m.cfg.id, MemberID: m.memberID, InstanceID: m.cfg.instanceID, Generation: m.generation}
		leaseEnd := m.leaseEnd
		c.mu.Unlock()
		if paused {
			if time.Now().After(leaseEnd) {
				// Still polling perhaps, but no longer entitled to records.
				settle()
				m.revoke(ctx, false)
				return semantics.Errorf(semantics.ErrUnknownMemberID, "lease ended without a heartbeat")
			}
			continue
		}
		// Sent again at once when a coordinator starts meanwhile (groupHeartbeat):
		// sent is when the copy answered went out.
		sent, err := c.c.groupHeartbeat(ctx, req, min(m.cfg.heartbeatInterval, heartbeatAttempt))
		switch {
		case err == nil:
			retryWait = heartbeatRetry
			c.mu.Lock()
			lost := m.leaseLost
			m.leaseEnd = m.lease(sent)
			c.mu.Unlock()
			if lost {
				// Poll dropped the partitions when the lease ran out (the
				// coordinator was unreachable for that long): rejoin to get them
				// back. The coordinator still counts this member in its
				// generation, so what it read is committed first, and a member
				// given the same partitions again does not read it twice.
				settle()
				if m.cfg.autoCommit {
					if err := m.commitPositions(ctx, false); err != nil {
						c.c.log.Debug("commit after the lease ran out failed", "group", m.cfg.id, "err", err)
					}
				}
				m.revoke(ctx, false)
				return nil
			}
		case errors.Is(err, semantics.ErrRebalanceInProgress):
			settle()
			if !m.cooperative {
				m.revoke(ctx, true)
			} // else keep reading while rejoining: the new assignment says what to revoke
			return nil
		case errors.Is(err, semantics.ErrUnknownMemberID), errors.Is(err, semantics.ErrIllegalGeneration),
			errors.Is(err, semantics.ErrFencedInstanceID):
			settle()
			m.revoke(ctx, false)
			return err
		default:
			// The coordinator may be failing over: keep trying while the lease lasts.
			if time.Now().After(leaseEnd) {
				settle()
				m.revoke(ctx, false)
				return err
			}
			retry = time.After(retryWait)
			retryWait = min(2*retryWait, heartbeatAttempt)
		}
	}
}

// revoke gives up the member's partitions: with commit, it first commits (with
// auto-commit: what the application is done with, or everything when closing) and
// calls OnRevoked; without, the partitions are lost (OnLost).
func (m *member) revoke(ctx context.Context, commit bool) {
	m.revokeFinal(ctx, commit, false)
}

func (m *member) revokeFinal(ctx context.Context, commit, closing bool) {
	c := m.c
	c.mu.Lock()
	tps := slices.Clone(m.assigned)
	c.mu.Unlock()
	if commit && len(tps) > 0 {
		if !closing {
			m.waitAllowRebalance(ctx)
		}
		if m.cfg.autoCommit {
			if err := m.commitPositions(ctx, closing); err != nil {
				c.c.log.Debug("commit before revoke failed", "group", m.cfg.id, "err", err)
			}
		}
		if m.cfg.onRevoked != nil {
			m.cfg.onRevoked(ctx, c, tps)
		}
	} else if !commit && len(tps) > 0 && m.cfg.onLost != nil {
		m.cfg.onLost(ctx, c, tps)
	}
	c.mu.Lock()
	m.stable = false
	m.leaseLost = false
	m.dropped = nil
	m.assigned = nil
	m.leaseEnd = time.Time{}
	c.replaceLocked(nil)
	c.mu.Unlock()
}

// waitAllowRebalance waits, with BlockRebalanceOnPoll, until the application allows
// the rebalance (AllowRebalance) after the records Poll returned it, at most the
// rebalance timeout; it heartbeats meanwhile, so the session lasts.
func (m *member) waitAllowRebalance(ctx context.Context) {
	if !m.cfg.blockRebalance {
		return
	}
	c := m.c
	c.mu.Lock()
	allowed := c.rebalanceAllowed
	c.mu.Unlock()
	if allowed == nil {
		return
	}
	limit := time.NewTimer(m.cfg.rebalanceTimeout)
	defer limit.Stop()
	hb := time.NewTicker(m.cfg.heartbeatInterval)
	defer hb.Stop()
	for {
		select {
		case <-allowed:
			return
		case <-ctx.Done():
			return
		case <-limit.C:
			c.c.log.Warn("rebalance went ahead without AllowRebalance after the rebalance timeout",
				"group", m.cfg.id, "err", fmt.Sprintf("rebalance timeout %v", m.cfg.rebalanceTimeout))
			return
		case <-hb.C:
			c.mu.Lock()
			req := groups.HeartbeatRequest{Group: m.cfg.id, MemberID: m.memberID, InstanceID: m.cfg.instanceID, Generation: m.generation}
			c.mu.Unlock()
			_, _ = c.c.groupHeartbeat(ctx, req, m.cfg.heartbeatInterval)
		}
	}
}

// AllowRebalance lets a rebalance held by BlockRebalanceOnPoll go ahead: the
// application is done with the records Poll returned (and has committed or marked
// them as it wants). Without BlockRebalanceOnPoll it does nothing.
func (c *Consumer) AllowRebalance() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rebalanceAllowed != nil {
		close(c.rebalanceAllowed)
		c.rebalanceAllowed = nil
	}
}

// blockRebalanceLocked holds rebalances after Poll returned records, with
// BlockRebalanceOnPoll, until AllowRebalance.
func (c *Consumer) blockRebalanceLocked() {
	if c.cfg.group.blockRebalance && c.member != nil && c.rebalanceAllowed == nil {
		c.rebalanceAllowed = make(chan struct{})
	}
}

// commitPositions commits the positions of the assigned partitions that moved: with
// all, everything Poll returned (on Close: the application is done); otherwise what
// the application was done with when it last called Poll (auto-commit, and before a
// rebalance, which run beside the application's processing). With AutoCommitMarks,
// only what the application marked (MarkCommitRecords), whatever all says.
func (m *member) commitPositions(ctx context.Context, all bool) error {
	return m.commitPositionsOf(ctx, nil, all)
}

// commitPositionsOf is commitPositions for the assigned partitions among tps (all
// of them when tps is nil).
func (m *member) commitPositionsOf(ctx context.Context, tps []TopicPartition, all bool) error {
	c := m.c
	c.mu.Lock()
	o := m.positionsLocked(tps, all)
	for tp, om := range m.dropped {
		if _, ok := o[tp]; !ok && tps == nil && m.committed[tp] != om.Offset {
			o[tp] = om
		}
	}
	c.mu.Unlock()
	if len(o) == 0 {
		return nil
	}
	return m.commit(ctx, o)
}

// positionsLocked returns the positions of the assigned partitions among tps (all
// of them when tps is nil) that differ from what the member committed: with all,
// everything delivered; else what the application is done with (or marked).
// Called with c.mu held.
func (m *member) positionsLocked(tps []TopicPartition, all bool) map[TopicPartition]OffsetAndMetadata {
	c := m.c
	o := map[TopicPartition]OffsetAndMetadata{}
	if tps == nil {
		tps = m.assigned
	}
	for _, tp := range tps {
		pc, ok := c.parts[tp]
		switch {
		case !ok:
		case m.cfg.autoCommitMarks:
			if pc.hasMarked && m.committed[tp] != pc.marked {
				o[tp] = OffsetAndMetadata{Offset: pc.marked}
			}
		case all && pc.delivered && m.committed[tp] != pc.next:
			o[tp] = OffsetAndMetadata{Offset: pc.next}
		case !all && pc.hasConsumed && m.committed[tp] != pc.consumed:
			o[tp] = OffsetAndMetadata{Offset: pc.consumed}
		}
	}
	return o
}

// stop ends the member: a final commit, then it leaves the group (a static member
// only gives up its lease, so a restart gets its partitions back).
func (m *member) stop(ctx context.Context, leave bool) {
	m.stopOnce.Do(func() { m.stopNow(ctx, leave) })
}

func (m *member) stopNow(ctx context.Context, leave bool) {
	m.c.mu.Lock()
	stopAfter := m.stopAfter
	m.c.mu.Unlock()
	if stopAfter != nil {
		stopAfter()
	}
	m.cancel()
	<-m.done
	c := m.c
	c.mu.Lock()
	req := groups.LeaveRequest{Group: m.cfg.id, MemberID: m.memberID, InstanceID: m.cfg.instanceID,
		KeepMembership: m.cfg.instanceID != ""}
	has := m.memberID != ""
	c.mu.Unlock()
	m.revokeFinal(ctx, true, true)
	if has && leave {
		_, _ = c.c.groupRequest(ctx, semantics.GroupLeave, req, 5*time.Second)
	}
}

// Generation returns the member's group generation and member id (0 and "" before the
// first assignment or without a group).
func (c *Consumer) Generation() (int32, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.member == nil {
		return 0, ""
	}
	return c.member.generation, c.member.memberID
}
