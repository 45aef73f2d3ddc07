package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// Coordinator runs Kafka's group state machine for every group. One coordinator is
// active per cluster at a time (the server makes sure); it keeps groups in memory
// and writes every change of membership, generation or assignment to its
// StateStore, from which Load takes groups over after a failover.
//
// Invariant 3 of docs/architecture.md, at most one member receiving a partition's
// records at any moment, rests on leases: a member may deliver records only until its last
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

// New returns a coordinator with no groups loaded.
func New(cfg Config, states StateStore, offs OffsetStore) (*Coordinator, error) {
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
// Groups caught in a rebalance start it again. Then it saves every group again,
// unchanged, so that each stored state carries this coordinator's store's epoch
// (KVStateStore.Claim): from then on no save of a coordinator before it lands. A
// save that fails (such a coordinator saved the group since the load, or this one
// was deposed already) fails the load. A load that fails leaves the coordinator
// closed: start another, with a new epoch.
func (c *Coordinator) Load(ctx context.Context) error {
	states, err := c.states.LoadGroups(ctx)
	if err != nil {
		c.Close()
		return fmt.Errorf("groups: load: %w", err)
	}
	c.mu.Lock()
	now := c.cfg.Clock.Now()
	loaded := make([]*group, 0, len(states))
	for _, st := range states {
		g := c.newGroupLocked(st.Group)
		loaded = append(loaded, g)
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
		if g.state == groups.PreparingRebalance || g.state == groups.CompletingRebalance {
			g.state = groups.Stable // so that prepareRebalance starts it afresh
			g.prepareRebalanceLocked("coordinator takeover during a rebalance")
		}
		g.mu.Unlock()
	}
	c.mu.Unlock()
	if err := c.stamp(loaded); err != nil {
		c.Close()
		return fmt.Errorf("groups: load: %w", err)
	}
	c.log.Info("groups loaded", "groups", len(states))
	return nil
}

// stampers bounds how many groups Load saves at once.
const stampers = 32

// stamp saves every loaded group as it is (Load), stampers at a time, and returns
// the first failure.
func (c *Coordinator) stamp(gs []*group) error {
	next := make(chan *group)
	errs := make(chan error, len(gs))
	var wg sync.WaitGroup
	for range min(stampers, len(gs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range next {
				g.mu.Lock()
				var err error
				if !g.closed {
					err = g.persistLocked()
				}
				g.mu.Unlock()
				if err != nil {
					errs <- fmt.Errorf("save group %q at takeover: %w", g.id, err)
				}
			}
		}()
	}
	for _, g := range gs {
		next <- g
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}

// Close stops every timer and answers pending joins and syncs, and every later
// request, with NOT_COORDINATOR.
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
		g.closeLocked()
		g.mu.Unlock()
	}
}

// checkOpen fails with NOT_COORDINATOR once the coordinator is closed, for the
// requests that reach no group (c.group checks it for the others).
func (c *Coordinator) checkOpen() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	return nil
}

func (c *Coordinator) newGroupLocked(id string) *group {
	g := &group{c: c, id: id, state: groups.Empty, members: map[string]*member{}, static: map[string]string{}}
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
