package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/groups/coordinator"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// groupService runs the group coordinator on the node that leads the groups bucket's
// stream, so exactly one node coordinates at a time (RAFT leadership), and serves it
// over NATS. Another node takes over from the stored states when leadership moves.
type groupService struct {
	log     *slog.Logger
	nc      *nats.Conn // serves the group API
	cfg     coordinator.Config
	obs     *observers
	states  *coordinator.KVStateStore
	offsets *offsets.Store

	role leaderRole[groupRun]
	wg   sync.WaitGroup // request handlers

	// txns is the node's transaction service once it is set up: stable offset
	// fetches (FetchRequest.RequireStable) ask its coordinator which offsets
	// pending transactions hold.
	txns atomic.Pointer[txnService]
}

// groupRun is the group coordinator running on this node and its subscription to
// the group API.
type groupRun struct {
	coord *coordinator.Coordinator
	sub   *nats.Subscription
	// stopWatch ends the watch of newer claims (KVStateStore.WatchClaims);
	// deposed is set once it saw one and closed coord: the role then ends the
	// run, and starts another with a new claim if this node leads still or again.
	stopWatch func()
	deposed   atomic.Bool
}

// run follows leadership of the groups bucket's stream until stop.
func (s *groupService) run() { s.role.run() }

// groupEnv is what the coordinator's host needs from its node.
type groupEnv struct {
	log   *slog.Logger
	nc    *nats.Conn          // serves the group API
	js    jetstream.JetStream // opens the groups and offsets buckets
	leads streamLeadership
	cfg   coordinator.Config
	obs   *observers
}

func newGroupService(ctx context.Context, env groupEnv, topics topicStore, replicas int) (*groupService, error) {
	kv, err := openBucket(ctx, env.js, jetstream.KeyValueConfig{
		Bucket: semantics.GroupsBucket, Description: "qxd consumer group states", History: 1,
		Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, err
	}
	offs, err := offsets.Open(ctx, env.js, replicas)
	if err != nil {
		return nil, fmt.Errorf("open offsets bucket: %w", err)
	}
	s := &groupService{log: env.log, nc: env.nc, cfg: env.cfg, obs: env.obs,
		states: coordinator.NewKVStateStore(env.nc, kv), offsets: offs.WithTopics(newTopicRecords(topics, env.log))}
	s.role = leaderRole[groupRun]{log: env.log, leads: env.leads, stream: semantics.KVStream(semantics.GroupsBucket),
		logs: roleLogs{
			started: "group coordinator started",
			failed:  "group coordinator did not start; will retry",
			moved:   "group coordinator stopped: another node leads the groups bucket, or this one is cut off from its cluster",
			ended:   "group coordinator stopped: a newer coordinator claimed the groups; it starts again with a new claim if this node leads",
		},
		start: s.startRun, stop: stopGroupRun, ended: func(r *groupRun) bool { return r.deposed.Load() }}
	return s, nil
}

func (s *groupService) startRun(ctx context.Context) (*groupRun, error) {
	// A new epoch for this run, before the load: a coordinator that ran before it,
	// on a node that has not noticed it lost the bucket, can then never write
	// over a group this one saved.
	states, err := s.states.Claim(ctx, s.nc.ConnectedServerName())
	if err != nil {
		return nil, err
	}
	// Its commits carry the epoch too: a commit queued to the run before
	// (its node paused) can then not take a partition's offset back.
	coord, err := coordinator.New(s.cfg, states, s.offsets.WithEpoch(states.Epoch()))
	if err != nil {
		return nil, err
	}
	if err := coord.Load(ctx); err != nil {
		return nil, err
	}
	run := &groupRun{coord: coord}
	// A run deposed by a newer claim stops answering at once, not at its first
	// save that meets the newer epoch: heartbeats it renewed would extend leases
	// its successor does not know of, and fetches would answer offsets the
	// successor's members have committed past.
	run.stopWatch, err = states.WatchClaims(context.Background(), func(epoch uint64) {
		coord.Close()
		run.deposed.Store(true)
		s.log.Warn("group coordinator deposed: a newer coordinator claimed the groups; this one stops answering",
			"epoch", epoch, "node", s.nc.ConnectedServerName())
	})
	if err != nil {
		coord.Close()
		return nil, err
	}
	sub, err := s.nc.Subscribe(semantics.GroupAll, func(m *nats.Msg) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(coord, m)
		}()
	})
	if err != nil {
		run.stopWatch()
		coord.Close()
		return nil, err
	}
	if err := s.nc.Flush(); err != nil {
		sub.Unsubscribe()
		run.stopWatch()
		coord.Close()
		return nil, err
	}
	run.sub = sub
	// Members waiting for a predecessor that went silent (paused, cut off) send
	// their requests again now rather than after their attempt (see the client's
	// groupRequestRetry); a lost announcement costs them that attempt only.
	if err := s.nc.Publish(semantics.GroupCoordinatorStarted, nil); err != nil {
		s.log.Debug("group coordinator start not announced", "err", err)
	}
	return run, nil
}

func stopGroupRun(r *groupRun) {
	r.sub.Unsubscribe()
	r.stopWatch()
	r.coord.Close()
}

func (s *groupService) stop() {
	s.role.close()
	s.wg.Wait()
}

// maxGroupWait bounds how long a join or sync may block on the coordinator.
const maxGroupWait = 10 * time.Minute

// quickGroupWait bounds the other group requests (commit, fetch, heartbeat, admin):
// their store requests can be lost while a leader changes, and a handler must not
// hang on one, nor keep the node from stopping.
const quickGroupWait = 10 * time.Second

// slowGroupRequest is how long a quick group request runs before its answer is
// logged (debug) with how long it took.
const slowGroupRequest = 500 * time.Millisecond

// serve is the NATS door of the coordinator: it answers one group request under a
// deadline (maxGroupWait for join and sync, quickGroupWait for the others). It
// decodes the request into its groups type, calls the coordinator's method for it
// and encodes the groups.Response.
func (s *groupService) serve(coord GroupCoordinator, m *nats.Msg) {
	// Per-group subjects (semantics.GroupSubject) carry the group, so that
	// permissions can name it; the body must name the same group.
	subject, serr := groupSubject(m)
	if serr != nil {
		b, _ := json.Marshal(groups.Response{Error: semantics.NewAPIError(serr)})
		_ = m.Respond(b)
		return
	}
	m.Subject = subject
	wait := quickGroupWait
	if m.Subject == semantics.GroupJoin || m.Subject == semantics.GroupSync {
		wait = maxGroupWait
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var resp groups.Response
	began := time.Now()
	err := handleGroup(ctx, coord, s.pendingOffsets, m, &resp)
	if took := time.Since(began); took >= slowGroupRequest && wait == quickGroupWait {
		s.log.Debug("group request answered slowly", "subject", m.Subject, "took", took, "err", err)
	}
	resp.Error = semantics.NewAPIError(err)
	s.obs.answered(APIName(m.Subject), semantics.CodeOf(err))
	b, _ := json.Marshal(resp)
	_ = m.Respond(b)
}

// groupSubject returns the operation subject of a group request. A request sent on
// a per-group subject (semantics.GroupSubject) must name that group in its body:
// permissions were checked against the subject.
func groupSubject(m *nats.Msg) (string, error) {
	op, tok := semantics.SplitGroupSubject(m.Subject)
	if tok == "" {
		return m.Subject, nil
	}
	var named struct {
		Group string `json:"group"`
	}
	_ = json.Unmarshal(m.Data, &named)
	if semantics.EncodeGroupID(named.Group) != tok {
		return op, semantics.Errorf(semantics.ErrInvalidRequest,
			"request on %s names group %q: a per-group request must name the group of its subject", m.Subject, named.Group)
	}
	return op, nil
}

func decode(m *nats.Msg, v any) error {
	if err := json.Unmarshal(m.Data, v); err != nil {
		return semantics.Errorf(semantics.ErrInvalidRequest, "malformed %s request: %v", m.Subject, err)
	}
	return nil
}

// handleGroup calls the coordinator method of m's subject and fills resp. pending
// answers stable offset fetches.
func handleGroup(ctx context.Context, coord GroupCoordinator, pending pendingFunc, m *nats.Msg, resp *groups.Response) error {
	var err error
	switch m.Subject {
	case semantics.GroupJoin:
		var req groups.JoinRequest
		if err = decode(m, &req); err == nil {
			var r groups.JoinResponse
			r, err = coord.Join(ctx, req)
			resp.Join = &r
		}
	case semantics.GroupSync:
		var req groups.SyncRequest
		if err = decode(m, &req); err == nil {
			var r groups.SyncResponse
			r, err = coord.Sync(ctx, req)
			resp.Sync = &r
		}
	case semantics.GroupHeartbeat:
		var req groups.HeartbeatRequest
		if err = decode(m, &req); err == nil {
			err = coord.Heartbeat(ctx, req)
		}
	case semantics.GroupLeave:
		var req groups.LeaveRequest
		if err = decode(m, &req); err == nil {
			err = coord.Leave(ctx, req)
		}
	case semantics.GroupCommit:
		var req groups.CommitRequest
		if err = decode(m, &req); err == nil {
			err = coord.CommitOffsets(ctx, req)
		}
	case semantics.GroupFetch:
		var req groups.FetchRequest
		if err = decode(m, &req); err == nil {
			resp.Offsets, err = fetchOffsets(ctx, coord, pending, req)
		}
	case semantics.GroupDescribe:
		var req groups.DescribeRequest
		if err = decode(m, &req); err == nil {
			var d groups.GroupDescription
			if d, err = coord.DescribeGroup(ctx, req.Group); err == nil {
				resp.Describe = &d
			}
		}
	case semantics.GroupList:
		resp.Groups, err = coord.ListGroups(ctx)
	case semantics.GroupDelete:
		var req groups.DeleteRequest
		if err = decode(m, &req); err == nil {
			err = coord.DeleteGroup(ctx, req.Group)
		}
	case semantics.GroupReset:
		var req groups.ResetRequest
		if err = decode(m, &req); err == nil {
			err = coord.ResetOffsets(ctx, req)
		}
	default:
		err = semantics.Errorf(semantics.ErrInvalidRequest, "unknown group API subject %s", m.Subject)
	}
	return err
}
