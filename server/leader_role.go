package server

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// roleStartTimeout bounds starting a role when this node takes it over (the group
// coordinator loads the group states, the transaction coordinator the
// transactions); a start that fails is retried at the next reconcile.
const roleStartTimeout = 15 * time.Second

// roleLogs are the messages a leaderRole logs, one constant string each.
type roleLogs struct {
	started string // the role started on this node
	failed  string // starting failed; retried at the next reconcile
	moved   string // leadership moved away and the role stopped here
	ended   string // the instance ended by itself (leaderRole.ended); started again if this node leads
}

// leaderRole runs one instance of a role (a coordinator) on the node that leads a
// stream, so exactly one node holds it at a time (RAFT leadership), and stops it
// when leadership moves away. Another node starts it from stored state when it
// becomes the leader. The group and transaction coordinators are both hosted so.
//
// start and stop are called under the role's lock, never both at once; start is
// given a context bounded by roleStartTimeout.
type leaderRole[T any] struct {
	log    *slog.Logger
	leads  streamLeadership
	stream string
	logs   roleLogs
	start  func(ctx context.Context) (*T, error)
	stop   func(*T)
	// ended, when set, reports a running instance that ended by itself (a
	// group coordinator deposed by a newer claim): the next reconcile stops
	// it, and starts another if this node leads.
	ended func(*T) bool

	// live is the running instance, for lookups: a lookup must not wait for mu,
	// which a reconcile holds while the role starts.
	live atomic.Pointer[T]

	mu     sync.Mutex
	cur    *T
	closed bool

	cancel context.CancelFunc
	loop   sync.WaitGroup // the reconcile loop
}

// current returns the running instance, or nil when this node does not hold the
// role now.
func (r *leaderRole[T]) current() *T { return r.live.Load() }

// run reconciles the role with leadership every reconcileEvery until close. It has
// its own loop, not the writers': starting can wait on a bucket between leaders,
// and partition writers must not wait with it.
func (r *leaderRole[T]) run() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.loop.Add(1)
	go func() {
		defer r.loop.Done()
		t := time.NewTicker(reconcileEvery)
		defer t.Stop()
		for {
			r.reconcile(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// reconcile starts or stops the role to match leadership of the stream.
func (r *leaderRole[T]) reconcile(ctx context.Context) {
	leader := r.leads.isStreamLeader(r.stream)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed && r.cur != nil && r.ended != nil && r.ended(r.cur) {
		r.stopLocked()
		r.log.Info(r.logs.ended)
	}
	switch {
	case r.closed:
	case leader && r.cur == nil:
		ctx, cancel := context.WithTimeout(ctx, roleStartTimeout)
		defer cancel()
		v, err := r.start(ctx)
		if err != nil {
			r.log.Warn(r.logs.failed, "err", err)
			return
		}
		r.cur = v
		r.live.Store(v)
		r.log.Info(r.logs.started)
	case !leader && r.cur != nil:
		r.stopLocked()
		r.log.Info(r.logs.moved)
	}
}

func (r *leaderRole[T]) stopLocked() {
	if r.cur != nil {
		r.live.Store(nil)
		r.stop(r.cur)
		r.cur = nil
	}
}

// close stops the reconcile loop and the role; the role does not start again.
func (r *leaderRole[T]) close() {
	if r.cancel != nil {
		r.cancel()
	}
	r.loop.Wait()
	r.mu.Lock()
	r.closed = true
	r.stopLocked()
	r.mu.Unlock()
}
