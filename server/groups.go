package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// groupService runs the group coordinator on the node that leads the groups bucket's
// stream, so exactly one node coordinates at a time (RAFT leadership), and serves it
// over NATS. Another node takes over from the stored states when leadership moves.
type groupService struct {
	n       *Node
	states  *groups.KVStateStore
	offsets *offsets.Store
	stream  string

	mu     sync.Mutex
	coord  *groups.Coordinator
	sub    *nats.Subscription
	closed bool
	wg     sync.WaitGroup // request handlers

	cancel context.CancelFunc
	loop   sync.WaitGroup // the reconcile loop
}

// groupStartTimeout bounds loading the group states when this node takes over
// coordinating; a load that fails is retried at the next reconcile.
const groupStartTimeout = 15 * time.Second

// run reconciles coordinating with leadership every reconcileEvery until stop. It has
// its own loop, not the writers': loading group states can wait on a bucket between
// leaders, and partition writers must not wait with it.
func (s *groupService) run() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.loop.Add(1)
	go func() {
		defer s.loop.Done()
		t := time.NewTicker(reconcileEvery)
		defer t.Stop()
		for {
			s.reconcile(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// topicRecords gives the offsets store the current topic records, so that commits
// are tied to one incarnation of their topic.
type topicRecords struct{ meta *metadata }

func (t topicRecords) Topic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	return t.meta.getTopic(ctx, name)
}

func newGroupService(ctx context.Context, n *Node, meta *metadata, replicas int) (*groupService, error) {
	kv, err := openBucket(ctx, n.js, jetstream.KeyValueConfig{
		Bucket: semantics.GroupsBucket, Description: "qxd consumer group states", History: 1,
		Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, err
	}
	offs, err := offsets.Open(ctx, n.js, replicas)
	if err != nil {
		return nil, fmt.Errorf("open offsets bucket: %w", err)
	}
	return &groupService{n: n, states: groups.NewKVStateStore(kv), offsets: offs.WithTopics(topicRecords{meta}),
		stream: "KV_" + semantics.GroupsBucket}, nil
}

// reconcile starts or stops coordinating to match leadership of the groups bucket.
func (s *groupService) reconcile(ctx context.Context) {
	leader := s.n.isStreamLeader(s.stream)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
	case leader && s.coord == nil:
		ctx, cancel := context.WithTimeout(ctx, groupStartTimeout)
		defer cancel()
		if err := s.startLocked(ctx); err != nil {
			s.n.log.Warn("group coordinator did not start; will retry", "err", err)
		}
	case !leader && s.coord != nil:
		s.stopLocked()
		s.n.log.Info("group coordinator moved to another node")
	}
}

func (s *groupService) startLocked(ctx context.Context) error {
	cfg := groups.DefaultConfig()
	cfg.Logger = s.n.log
	if s.n.cfg.GroupInitialRebalanceDelay > 0 {
		cfg.InitialRebalanceDelay = s.n.cfg.GroupInitialRebalanceDelay
	}
	coord, err := groups.NewCoordinator(cfg, s.states, s.offsets)
	if err != nil {
		return err
	}
	if err := coord.Load(ctx); err != nil {
		return err
	}
	sub, err := s.n.nc.Subscribe(semantics.GroupAll, func(m *nats.Msg) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(coord, m)
		}()
	})
	if err != nil {
		coord.Close()
		return err
	}
	if err := s.n.nc.Flush(); err != nil {
		sub.Unsubscribe()
		coord.Close()
		return err
	}
	s.coord, s.sub = coord, sub
	s.n.log.Info("group coordinator started")
	return nil
}

func (s *groupService) stopLocked() {
	if s.sub != nil {
		s.sub.Unsubscribe()
		s.sub = nil
	}
	if s.coord != nil {
		s.coord.Close()
		s.coord = nil
	}
}

func (s *groupService) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.loop.Wait()
	s.mu.Lock()
	s.closed = true
	s.stopLocked()
	s.mu.Unlock()
	s.wg.Wait()
}

// The wire forms of the coordinator's requests, where they differ from the Go ones.
type (
	commitWire struct {
		Group      string                  `json:"group"`
		MemberID   string                  `json:"member_id,omitempty"`
		InstanceID string                  `json:"instance_id,omitempty"`
		Generation int32                   `json:"generation"`
		Offsets    []semantics.OffsetEntry `json:"offsets"`
	}
	groupWire struct {
		Group   string                  `json:"group"`
		Offsets []semantics.OffsetEntry `json:"offsets,omitempty"`
	}
	groupResponse struct {
		Error    *semantics.APIError      `json:"error,omitempty"`
		Join     *groups.JoinResponse     `json:"join,omitempty"`
		Sync     *groups.SyncResponse     `json:"sync,omitempty"`
		Offsets  []semantics.OffsetEntry  `json:"offsets,omitempty"`
		Describe *groups.GroupDescription `json:"describe,omitempty"`
		Groups   []groups.GroupSummary    `json:"groups,omitempty"`
	}
)

// maxGroupWait bounds how long a join or sync may block on the coordinator.
const maxGroupWait = 10 * time.Minute

// quickGroupWait bounds the other group requests (commit, fetch, heartbeat, admin):
// their store requests can be lost while a leader changes, and a handler must not
// hang on one, nor keep the node from stopping.
const quickGroupWait = 10 * time.Second

func (s *groupService) serve(coord *groups.Coordinator, m *nats.Msg) {
	// Per-group subjects (semantics.GroupSubject) carry the group, so that
	// permissions can name it; the body must name the same group.
	subject, serr := groupSubject(m)
	if serr != nil {
		b, _ := json.Marshal(groupResponse{Error: semantics.NewAPIError(serr)})
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
	var resp groupResponse
	err := s.handle(ctx, coord, m, &resp)
	resp.Error = semantics.NewAPIError(err)
	b, _ := json.Marshal(resp)
	_ = m.Respond(b)
}

func decode(m *nats.Msg, v any) error {
	if err := json.Unmarshal(m.Data, v); err != nil {
		return semantics.Errorf(semantics.ErrInvalidRequest, "malformed %s request: %v", m.Subject, err)
	}
	return nil
}

func (s *groupService) handle(ctx context.Context, coord *groups.Coordinator, m *nats.Msg, resp *groupResponse) error {
	switch m.Subject {
	case semantics.GroupJoin:
		var req groups.JoinRequest
		if err := decode(m, &req); err != nil {
			return err
		}
		if req.RebalanceTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, req.RebalanceTimeout+req.SessionTimeout+5*time.Second)
			defer cancel()
		}
		r, err := coord.Join(ctx, req)
		resp.Join = &r
		return err
	case semantics.GroupSync:
		var req groups.SyncRequest
		if err := decode(m, &req); err != nil {
			return err
		}
		r, err := coord.Sync(ctx, req)
		resp.Sync = &r
		return err
	case semantics.GroupHeartbeat:
		var req groups.HeartbeatRequest
		if err := decode(m, &req); err != nil {
			return err
		}
		return coord.Heartbeat(ctx, req)
	case semantics.GroupLeave:
		var req groups.LeaveRequest
		if err := decode(m, &req); err != nil {
			return err
		}
		return coord.Leave(ctx, req)
	case semantics.GroupCommit:
		var req commitWire
		if err := decode(m, &req); err != nil {
			return err
		}
		o := make(map[semantics.TopicPartition]offsets.Commit, len(req.Offsets))
		for _, e := range req.Offsets {
			o[semantics.TopicPartition{Topic: e.Topic, Partition: e.Partition}] = offsets.Commit{Offset: e.Offset, Metadata: e.Metadata, TopicID: e.TopicID}
		}
		return coord.CommitOffsets(ctx, groups.CommitRequest{Group: req.Group, MemberID: req.MemberID,
			InstanceID: req.InstanceID, Generation: req.Generation, Offsets: o})
	case semantics.GroupFetch:
		var req groups.FetchRequest
		if err := decode(m, &req); err != nil {
			return err
		}
		got, err := coord.FetchOffsets(ctx, req)
		if err != nil {
			return err
		}
		resp.Offsets = offsetEntries(got)
		return nil
	case semantics.GroupDescribe:
		var req groupWire
		if err := decode(m, &req); err != nil {
			return err
		}
		d, err := coord.DescribeGroup(ctx, req.Group)
		if err != nil {
			return err
		}
		resp.Describe = &d
		return nil
	case semantics.GroupList:
		gs, err := coord.ListGroups(ctx)
		resp.Groups = gs
		return err
	case semantics.GroupDelete:
		var req groupWire
		if err := decode(m, &req); err != nil {
			return err
		}
		return coord.DeleteGroup(ctx, req.Group)
	case semantics.GroupReset:
		var req groupWire
		if err := decode(m, &req); err != nil {
			return err
		}
		o := make(map[semantics.TopicPartition]int64, len(req.Offsets))
		for _, e := range req.Offsets {
			o[semantics.TopicPartition{Topic: e.Topic, Partition: e.Partition}] = e.Offset
		}
		return coord.ResetOffsets(ctx, req.Group, o)
	}
	return semantics.Errorf(semantics.ErrInvalidRequest, "unknown group API subject %s", m.Subject)
}

func offsetEntries(m map[semantics.TopicPartition]offsets.Committed) []semantics.OffsetEntry {
	out := make([]semantics.OffsetEntry, 0, len(m))
	for tp, c := range m {
		out = append(out, semantics.OffsetEntry{Topic: tp.Topic, Partition: tp.Partition, Offset: c.Offset,
			Metadata: c.Metadata, Generation: c.Generation, Member: c.Member, Time: c.Time, TopicID: c.TopicID})
	}
	return out
}
