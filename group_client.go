package qxd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// groupRequest sends a request to the group coordinator. timeout bounds it when ctx
// has no deadline.
func (c *Client) groupRequest(ctx context.Context, subject string, req any, timeout time.Duration) (groups.Response, error) {
	return c.groupSend(ctx, subject, req, timeout, false)
}

// groupRequestResent is groupRequest for a join or a sync, which waits for the
// rest of the group (up to its rebalance timeout and more). It is sent again
// instead of waiting all that time for an answer that will not come: when the
// connection is lost and restored meanwhile (requestResent: the answer was lost
// with the connection, as when the client moved off a node it found silent), and
// when a group coordinator starts while it waits (the coordinator it went to is
// silent, its node paused or cut off; see groupRequestRetry). Each copy has the
// whole timeout. Sending either twice is safe, also when both copies reach the
// same coordinator: a join sent again replaces the one before (by its member id,
// a first join by its JoinKey), as Kafka's coordinator treats a JoinGroup of a
// known member id while the group prepares a rebalance; a sync sent again in the
// same generation gets the same assignment, and a sync a new coordinator cannot
// match (it restarted the rebalance it took over) gets REBALANCE_IN_PROGRESS and
// the member joins again. A copy a deposed coordinator handles when its node
// wakes cannot change the group: its saves carry its older epoch.
func (c *Client) groupRequestResent(ctx context.Context, subject string, req any, timeout time.Duration) (groups.Response, error) {
	for {
		sent := time.Now()
		resp, err := c.groupWatched(ctx, subject, req, timeout, true, c.coord.next(c.nc, c.log))
		if !errors.Is(err, errCoordinatorStarted) {
			return resp, err
		}
		c.log.Debug("a group coordinator started while waiting for an answer; asking again", "subject", subject, "took", time.Since(sent))
	}
}

// groupHeartbeat sends a heartbeat, bounded by attempt. A copy still unanswered
// when a group coordinator starts is sent again at once, as groupRequestRetry
// does: the member's lease runs from the last heartbeat answered, and the first
// copy went to a coordinator that went silent. A heartbeat twice does what it
// does once. It returns when the copy answered (or the last one) was sent.
func (c *Client) groupHeartbeat(ctx context.Context, req groups.HeartbeatRequest, attempt time.Duration) (time.Time, error) {
	for {
		sent := time.Now()
		_, err := c.groupWatched(ctx, semantics.GroupHeartbeat, req, attempt, false, c.coord.next(c.nc, c.log))
		if !errors.Is(err, errCoordinatorStarted) {
			return sent, err
		}
		c.log.Debug("a group coordinator started while waiting for an answer; asking again", "subject", semantics.GroupHeartbeat, "took", time.Since(sent))
	}
}

func (c *Client) groupSend(ctx context.Context, subject string, req any, timeout time.Duration, resend bool) (groups.Response, error) {
	var resp groups.Response
	b, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	// Always bound one request: a request sent while a node is dying can be lost
	// without a "no responders" answer.
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if subject != semantics.GroupList {
		// Per-group subjects, so that permissions can name the group.
		var named struct {
			Group string `json:"group"`
		}
		if json.Unmarshal(b, &named) == nil && named.Group != "" {
			subject = semantics.GroupSubject(subject, named.Group)
		}
	}
	var m *nats.Msg
	if resend {
		m, err = c.requestResent(ctx, subject, b)
	} else {
		m, err = c.requestWatched(ctx, subject, b)
	}
	if err != nil {
		err = wrapNATSError(err)
		if semantics.CodeOf(err) == semantics.ErrUnavailable.Code {
			return resp, semantics.Errorf(semantics.ErrCoordinatorNotAvailable, "no node coordinates groups right now (failover, or no qxd node): %v", err)
		}
		return resp, err
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return resp, semantics.Errorf(semantics.ErrInvalidRequest, "malformed response on %s: %v", subject, err)
	}
	return resp, resp.Error.Err()
}

// groupAttempt bounds one attempt of a quick group request (commit, fetch, admin); a
// request lost with a dying node is retried instead of waiting out the whole timeout.
const groupAttempt = 3 * time.Second

// errCoordinatorStarted ends an attempt of a group request when a coordinator
// starts while it waits (semantics.GroupCoordinatorStarted).
var errCoordinatorStarted = errors.New("a group coordinator started")

// groupRequestRetry sends an idempotent group request, retrying while the coordinator
// is unavailable or an attempt times out, until total has passed or ctx ends.
//
// An attempt still unanswered when a coordinator starts somewhere is sent again at
// once: the coordinator it went to is silent (its node paused or cut off, the groups
// bucket elected another leader), and would answer only when it wakes, if at all.
// Without this the request waits out groupAttempt (3 s), about a second past the
// election. Sending it again is safe: a commit, fetch, describe, list or reset
// twice does what it does once; a copy a deposed coordinator handles when its node
// wakes cannot take an offset back, as its commits carry its older epoch
// (offsets.Store.WithEpoch). A delete is not sent again this way: its second copy,
// answered after the first, would find no group.
func (c *Client) groupRequestRetry(ctx context.Context, subject string, req any, total time.Duration) (groups.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	backoff := 50 * time.Millisecond
	for {
		sent := time.Now()
		var started <-chan struct{}
		if subject != semantics.GroupDelete {
			started = c.coord.next(c.nc, c.log)
		}
		resp, err := c.groupAttempt(ctx, subject, req, started)
		if errors.Is(err, errCoordinatorStarted) {
			c.log.Debug("a group coordinator started while waiting for an answer; asking again", "subject", subject, "took", time.Since(sent))
			continue
		}
		retry := errors.Is(err, semantics.ErrTimeout) || errors.Is(err, semantics.ErrCoordinatorNotAvailable) ||
			errors.Is(err, semantics.ErrNotCoordinator)
		if !retry || ctx.Err() != nil {
			return resp, err
		}
		c.log.Debug("group request failed; retrying", "subject", subject, "took", time.Since(sent), "err", err)
		select {
		case <-ctx.Done():
			return resp, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// groupAttempt sends one attempt of a quick group request, bounded by
// groupAttempt; it ends with errCoordinatorStarted when started fires first.
func (c *Client) groupAttempt(ctx context.Context, subject string, req any, started <-chan struct{}) (groups.Response, error) {
	return c.groupWatched(ctx, subject, req, groupAttempt, false, started)
}

// groupWatched sends one copy of a group request, bounded by timeout (with resend,
// sent again on a reconnection, see groupSend); it ends with
// errCoordinatorStarted when started fires first. A nil started never fires.
func (c *Client) groupWatched(ctx context.Context, subject string, req any, timeout time.Duration, resend bool, started <-chan struct{}) (groups.Response, error) {
	if started == nil {
		return c.groupSend(ctx, subject, req, timeout, resend)
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-started:
			cancel(errCoordinatorStarted)
		case <-actx.Done():
		}
	}()
	resp, err := c.groupSend(actx, subject, req, timeout, resend)
	cancel(nil)
	<-watched
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), errCoordinatorStarted) {
		return resp, errCoordinatorStarted
	}
	return resp, err
}

// coordStarts tells a client's waiting group requests that a group coordinator
// started (semantics.GroupCoordinatorStarted). It listens from the first group
// request on, with one subscription per client.
type coordStarts struct {
	mu      sync.Mutex
	sub     *nats.Subscription
	started chan struct{} // closed at the next start, then replaced
}

// next returns a channel closed when the next coordinator start is heard, or nil
// (never closed) when the client cannot listen (the subscription failed: the
// request then waits out its attempt, as before).
func (s *coordStarts) next(nc *nats.Conn, log *slog.Logger) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sub == nil {
		sub, err := nc.Subscribe(semantics.GroupCoordinatorStarted, func(*nats.Msg) {
			s.mu.Lock()
			close(s.started)
			s.started = make(chan struct{})
			s.mu.Unlock()
		})
		if err != nil {
			log.Debug("cannot listen for group coordinator starts", "err", err)
			return nil
		}
		s.sub, s.started = sub, make(chan struct{})
	}
	return s.started
}

// close stops listening; idempotent.
func (s *coordStarts) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sub != nil {
		_ = s.sub.Unsubscribe()
	}
}

// fetchCommitted reads a group's committed offsets of tps (all when tps is empty).
func (c *Client) fetchCommitted(ctx context.Context, group string, tps []TopicPartition) (map[TopicPartition]semantics.OffsetEntry, error) {
	return c.fetchOffsets(ctx, groups.FetchRequest{Group: group, Partitions: tps})
}

// Backoff of a stable offset fetch while a transaction holds an offset.
const (
	unstableBackoff    = 50 * time.Millisecond
	maxUnstableBackoff = 500 * time.Millisecond
)

// fetchStable reads a group's committed offsets of tps (all when tps is empty)
// as Kafka's require_stable does: while a transaction not yet completed holds
// the offset of one of them (UNSTABLE_OFFSET_COMMIT), it asks again, backing
// off, until ctx ends, so that it never returns the offset committed before a
// transaction that may still commit. wait, if not nil, is called between tries
// (a member heartbeats there); its error ends the fetch.
func (c *Client) fetchStable(ctx context.Context, group string, tps []TopicPartition, wait func(context.Context) error) (map[TopicPartition]semantics.OffsetEntry, error) {
	backoff := unstableBackoff
	for {
		got, err := c.fetchOffsets(ctx, groups.FetchRequest{Group: group, Partitions: tps, RequireStable: true})
		if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			// ctx ended while a request was out: that is the caller's deadline,
			// not the node's failure to answer.
			return nil, fmt.Errorf("%w (waiting for a transaction to complete: %v)", ctx.Err(), err)
		}
		if !errors.Is(err, semantics.ErrUnstableOffsetCommit) {
			return got, err
		}
		if wait != nil {
			if werr := wait(ctx); werr != nil {
				return nil, werr
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (waiting for a transaction to complete: %v)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxUnstableBackoff)
	}
}

func (c *Client) fetchOffsets(ctx context.Context, req groups.FetchRequest) (map[TopicPartition]semantics.OffsetEntry, error) {
	resp, err := c.groupRequestRetry(ctx, semantics.GroupFetch, req, c.cfg.reqTimeout)
	if err != nil {
		return nil, err
	}
	out := make(map[TopicPartition]semantics.OffsetEntry, len(resp.Offsets))
	for _, e := range resp.Offsets {
		out[TopicPartition{Topic: e.Topic, Partition: e.Partition}] = e
	}
	return out, nil
}
