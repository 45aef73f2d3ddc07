// Package bridge runs NATS bridges on a qxd node: ingest bridges take plain NATS
// messages (or a JetStream stream's) into a topic, egress bridges publish a topic's
// records as plain NATS messages. It keeps the definitions in the qxd_bridges
// bucket, answers the bridge admin API and runs every bridge, through the Go SDK, on
// the node leading that bucket's stream. A node hosts bridges when its embedder adds
// Service to server.Config.Services (qxd server does).
package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// Service hosts bridges on a node: add it to server.Config.Services. It is a
// description, the same for every node; each node's bridges run in what Start
// returns.
type Service struct{}

var _ server.Service = Service{}

// Start opens the bridge definitions (the qxd_bridges bucket) and keeps the bridges
// running on the node that leads the bucket's stream. The running service answers
// the bridge admin API (semantics.APIBridge*).
func (Service) Start(ctx context.Context, h server.Host) (server.Running, error) {
	kv, err := h.OpenBucket(ctx, jetstream.KeyValueConfig{
		Bucket: semantics.BridgesBucket, Description: "qxd bridge definitions", History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open bridge definitions: %w", err)
	}
	s := &service{h: h, log: h.Logger(), kv: kv, stream: "KV_" + semantics.BridgesBucket,
		defs: map[string]semantics.Bridge{}, runners: map[string]*bridgeRunner{}, kick: make(chan struct{}, 1)}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// service keeps the bridge definitions, serves the bridge admin API (on every node,
// through the admin queue group) and runs every bridge on the node that leads the
// bucket's stream: one active runner per bridge, taken over by the new leader when
// leadership moves.
type service struct {
	h      server.Host
	log    *slog.Logger
	kv     jetstream.KeyValue
	stream string

	mu      sync.Mutex
	defs    map[string]semantics.Bridge
	runners map[string]*bridgeRunner
	client  *qxd.Client
	closed  bool

	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ server.APIServer = (*service)(nil)

// reconcileEvery is how often the service checks whether this node runs the bridges.
const reconcileEvery = 250 * time.Millisecond

// start loads the definitions and keeps the runners matching them and leadership.
func (s *service) start() error {
	client, err := qxd.NewClient(s.h.Conn(), qxd.WithName("qxd-bridges"), qxd.WithLogger(s.log))
	if err != nil {
		return err
	}
	s.client = client
	cancel, err := kvscan.Reconciler{Every: reconcileEvery, Kick: s.kick,
		Apply: s.apply, Reconcile: s.reconcile}.Start(s.kv, &s.wg)
	if err != nil {
		client.Close()
		return fmt.Errorf("watch bridge definitions: %w", err)
	}
	s.cancel = cancel
	return nil
}

func (s *service) apply(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(s.defs, e.Key())
		return
	}
	b, err := decodeBridge(e)
	if err != nil {
		s.log.Warn("skipping corrupt bridge definition", "bridge", e.Key(), "err", err)
		return
	}
	s.defs[b.Name] = b
}

func decodeBridge(e jetstream.KeyValueEntry) (semantics.Bridge, error) {
	var b semantics.Bridge
	if err := json.Unmarshal(e.Value(), &b); err != nil {
		return b, fmt.Errorf("bridge definition %q is corrupt: %w", e.Key(), err)
	}
	b.Revision = e.Revision()
	return b, nil
}

// reconcile starts and stops runners: on the leader of the bridges bucket, one per
// definition (restarted when its definition changes); elsewhere none.
func (s *service) reconcile(ctx context.Context) {
	leader := s.h.IsStreamLeader(s.stream)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	var stop []*bridgeRunner
	for name, r := range s.runners {
		d, ok := s.defs[name]
		if leader && ok && d.Revision == r.def.Revision {
			continue
		}
		stop = append(stop, r)
		delete(s.runners, name)
	}
	if leader {
		for name, d := range s.defs {
			if _, ok := s.runners[name]; !ok {
				s.runners[name] = startBridgeRunner(s.h, s.log, s.client, d)
			}
		}
	}
	s.mu.Unlock()
	for _, r := range stop {
		r.stop(ctx)
	}
	if !leader && len(stop) > 0 {
		s.log.Info("bridges moved to another node", "bridges", len(stop))
	}
}

// Close stops every runner: ingest runners stop taking messages and finish the
// records in flight (answering request-style publishers) within ctx.
func (s *service) Close(ctx context.Context) {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.mu.Lock()
	s.closed = true
	runners := s.runners
	s.runners = map[string]*bridgeRunner{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.stop(ctx)
		}()
	}
	wg.Wait()
}

func (s *service) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// runner is the node that runs the bridges: the bridges bucket's stream leader.
func (s *service) runner(ctx context.Context) string {
	if !s.h.Clustered() {
		return s.h.Name()
	}
	st, err := s.h.JetStream().Stream(ctx, s.stream)
	if err != nil {
		return ""
	}
	if ci := st.CachedInfo().Cluster; ci != nil {
		return ci.Leader
	}
	return ""
}

// ServeAPI answers the bridge admin API's requests (semantics.APIBridgePrefix).
func (s *service) ServeAPI(ctx context.Context, m *nats.Msg) (any, bool) {
	if _, ok := semantics.CutSubject(m.Subject, semantics.APIBridgePrefix); !ok {
		return nil, false
	}
	return s.serve(ctx, m), true
}

// serve answers one bridge admin request.
func (s *service) serve(ctx context.Context, m *nats.Msg) any {
	bad := func(err error) error {
		return semantics.Errorf(semantics.ErrInvalidRequest, "malformed %s request: %v", m.Subject, err)
	}
	switch m.Subject {
	case semantics.APIBridgeCreate:
		var b semantics.Bridge
		if err := json.Unmarshal(m.Data, &b); err != nil {
			return semantics.BridgeResponse{Error: semantics.NewAPIError(bad(err))}
		}
		b, err := s.create(ctx, b)
		return bridgeResponse(b, err)
	case semantics.APIBridgeDelete:
		var req semantics.BridgeRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.BridgeResponse{Error: semantics.NewAPIError(bad(err))}
		}
		b, err := s.delete(ctx, req.Name)
		return bridgeResponse(b, err)
	case semantics.APIBridgeDescribe:
		var req semantics.BridgeRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return semantics.BridgeResponse{Error: semantics.NewAPIError(bad(err))}
		}
		b, err := s.get(ctx, req.Name)
		resp := bridgeResponse(b, err)
		if err == nil {
			resp.Status = s.status(ctx, b.Name, time.Second)
		}
		return resp
	case semantics.APIBridgeList:
		bs, err := s.list(ctx)
		resp := semantics.ListBridgesResponse{Error: semantics.NewAPIError(err), Bridges: bs}
		if err == nil {
			resp.Runner = s.runner(ctx)
		}
		return resp
	}
	return semantics.BridgeResponse{Error: semantics.NewAPIError(semantics.Errorf(semantics.ErrInvalidRequest, "unknown API subject %s", m.Subject))}
}

func bridgeResponse(b semantics.Bridge, err error) semantics.BridgeResponse {
	if err != nil {
		return semantics.BridgeResponse{Error: semantics.NewAPIError(err)}
	}
	return semantics.BridgeResponse{Bridge: &b}
}

func (s *service) get(ctx context.Context, name string) (semantics.Bridge, error) {
	if err := semantics.ValidateBridgeName(name); err != nil {
		return semantics.Bridge{}, err
	}
	// From the bucket's leader: a replica behind it says a bridge just created
	// does not exist, to a describe or a delete. Past leaderWait (the bucket
	// between leaders), a replica's copy.
	v, rev, err := kvscan.GetFresh(ctx, s.h.Conn(), s.kv, name, leaderWait)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return semantics.Bridge{}, semantics.Errorf(semantics.ErrInvalidRequest, "bridge %q does not exist: list bridges with 'qxd bridge list'", name)
	}
	if err != nil {
		return semantics.Bridge{}, semantics.Errorf(semantics.ErrUnavailable, "read bridge %q: %v; retry", name, err)
	}
	var b semantics.Bridge
	if err := json.Unmarshal(v, &b); err != nil {
		return b, fmt.Errorf("bridge definition %q is corrupt: %w", name, err)
	}
	b.Revision = rev
	return b, nil
}

// leaderWait bounds get's wait for the bridges bucket's leader.
const leaderWait = time.Second

func (s *service) list(ctx context.Context) ([]semantics.Bridge, error) {
	var bs []semantics.Bridge
	err := kvscan.Scan(ctx, s.kv, jetstream.AllKeys, func() { bs = []semantics.Bridge{} },
		func(e jetstream.KeyValueEntry) error {
			b, err := decodeBridge(e)
			if err != nil {
				return err
			}
			bs = append(bs, b)
			return nil
		})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(bs, func(a, b semantics.Bridge) int { return strings.Compare(a.Name, b.Name) })
	return bs, nil
}

// create validates b (the one validation path for the CLI and the SDK), checks its
// topic exists and that it does not feed a topic back into itself, sets a reliable
// egress bridge's starting offsets, and stores it; the runner node starts it.
func (s *service) create(ctx context.Context, b semantics.Bridge) (semantics.Bridge, error) {
	b = b.WithDefaults()
	b.Created, b.Revision = time.Now().UTC().Truncate(time.Millisecond), 0
	if err := b.Validate(); err != nil {
		return b, err
	}
	t, err := s.h.Topic(ctx, b.Topic)
	if errors.Is(err, semantics.ErrUnknownTopic) {
		return b, semantics.Errorf(semantics.ErrUnknownTopic, "bridge %q: topic %q does not exist: create it first with 'qxd topic create %s'", b.Name, b.Topic, b.Topic)
	}
	if err != nil {
		return b, err
	}
	if t.State != semantics.TopicReady {
		return b, semantics.Errorf(semantics.ErrTopicNotReady, "bridge %q: topic %q is %s: finish that first", b.Name, b.Topic, t.State)
	}
	existing, err := s.list(ctx)
	if err != nil {
		return b, semantics.Errorf(semantics.ErrUnavailable, "bridge %q: read the other bridges: %v; retry", b.Name, err)
	}
	for _, o := range existing {
		if o.Name == b.Name {
			return b, semantics.Errorf(semantics.ErrInvalidRequest, "bridge %q already exists (%s): delete it first or choose another name", b.Name, describeBridge(o))
		}
	}
	var src []string // an ingest bridge's subject patterns
	if b.Kind == semantics.BridgeIngest {
		if src, err = s.checkSource(ctx, b, existing); err != nil {
			return b, err
		}
	}
	for _, o := range existing {
		if err := s.checkLoop(ctx, b, src, o); err != nil {
			return b, err
		}
	}
	if b.Kind == semantics.BridgeEgress && b.Mode == semantics.EgressReliable {
		if err := s.setStart(ctx, b, t); err != nil {
			return b, err
		}
	}
	v, err := json.Marshal(b)
	if err != nil {
		return b, err
	}
	if streamSource(b) {
		if err := s.createSource(ctx, b, t); err != nil {
			return b, err
		}
	}
	rev, err := s.kv.Create(ctx, b.Name, v)
	if err != nil {
		s.deleteSource(context.WithoutCancel(ctx), b)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return b, semantics.Errorf(semantics.ErrInvalidRequest, "bridge %q already exists: delete it first or choose another name", b.Name)
	}
	if err != nil {
		return b, semantics.Errorf(semantics.ErrUnavailable, "bridge %q: store the definition: %v; retry", b.Name, err)
	}
	b.Revision = rev
	s.wake()
	s.log.Info("bridge created", "bridge", b.Name, "topic", b.Topic, "kind", b.Kind)
	// Answer once the bridge runs (bounded), so that what is published right after
	// the create is bridged.
	deadline := time.Now().Add(bridgeStartWait)
	for s.status(ctx, b.Name, 250*time.Millisecond) == nil && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	return b, nil
}

// bridgeStartWait bounds how long a create waits for the new bridge to run.
const bridgeStartWait = 10 * time.Second

// status asks a bridge's runner for its status; nil when none answers in time.
func (s *service) status(ctx context.Context, name string, wait time.Duration) *semantics.BridgeStatus {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	m, err := s.h.Conn().RequestWithContext(ctx, semantics.BridgeStatusSubject(name), nil)
	if err != nil {
		return nil
	}
	var st semantics.BridgeStatus
	if json.Unmarshal(m.Data, &st) != nil {
		return nil
	}
	return &st
}

// checkLoop refuses an ingest bridge whose source takes what an egress bridge of the
// same topic publishes, or the reverse: records would circle for ever. src holds
// b's source patterns when b is an ingest bridge.
func (s *service) checkLoop(ctx context.Context, b semantics.Bridge, src []string, o semantics.Bridge) error {
	if b.Topic != o.Topic || b.Kind == o.Kind {
		return nil
	}
	in, out := b, o
	if b.Kind == semantics.BridgeEgress {
		in, out = o, b
		src = s.sourcePatterns(ctx, o)
	}
	t, err := semantics.ParseSubjectTemplate(out.To)
	if err != nil {
		return nil
	}
	for _, p := range src {
		if semantics.SubjectsOverlap(p, t.Pattern()) {
			what := fmt.Sprintf("pattern %q", p)
			if streamSource(in) && !in.Capture {
				what = fmt.Sprintf("source stream %s (subjects %q)", in.Stream, p)
			}
			return semantics.Errorf(semantics.ErrInvalidConfig,
				"bridge %q: ingest %s overlaps the subjects %q that egress bridge %q publishes topic %q's records on: records would loop back into the topic; choose subjects that do not overlap",
				b.Name, what, out.To, o.Name, b.Topic)
		}
	}
	return nil
}

// setStart commits where a new reliable egress bridge's group starts: every
// partition's high watermark (start "end") or log start (start "start").
func (s *service) setStart(ctx context.Context, b semantics.Bridge, t semantics.TopicMeta) error {
	offs := map[semantics.TopicPartition]int64{}
	for p := int32(0); p < t.Config.Partitions; p++ {
		o, err := partition.NewReader(s.h.Conn(), t.Name, p, false).ReadOffsets(ctx, func(ctx context.Context) (int64, error) {
			return s.h.Checkpoint(ctx, t.ID, p)
		})
		if err != nil {
			return semantics.Errorf(semantics.ErrUnavailable, "bridge %q: read partition %d of topic %q: %v; retry", b.Name, p, t.Name, err)
		}
		offs[semantics.TopicPartition{Topic: t.Name, Partition: p}] = o.HighWatermark
		if b.Start == semantics.BridgeStartStart {
			offs[semantics.TopicPartition{Topic: t.Name, Partition: p}] = o.LogStart
		}
	}
	if err := s.h.ResetOffsets(ctx, semantics.BridgeGroup(b.Name), offs); err != nil {
		return semantics.Errorf(semantics.ErrUnavailable, "bridge %q: set the starting offsets of group %q: %v; retry", b.Name, semantics.BridgeGroup(b.Name), err)
	}
	return nil
}

func (s *service) delete(ctx context.Context, name string) (semantics.Bridge, error) {
	b, err := s.get(ctx, name)
	if err != nil {
		return b, err
	}
	if err := s.kv.Purge(ctx, name); err != nil {
		return b, semantics.Errorf(semantics.ErrUnavailable, "delete bridge %q: %v; retry", name, err)
	}
	s.wake()
	s.forgetGroup(ctx, b)
	s.deleteSource(ctx, b)
	s.log.Info("bridge deleted", "bridge", name)
	return b, nil
}

// forgetGroup deletes a deleted reliable egress bridge's consumer group, once its
// runner has left it (retried for a few seconds while it still has a member).
func (s *service) forgetGroup(ctx context.Context, b semantics.Bridge) {
	if b.Kind != semantics.BridgeEgress || b.Mode != semantics.EgressReliable {
		return
	}
	req, _ := json.Marshal(map[string]string{"group": semantics.BridgeGroup(b.Name)})
	deadline := time.Now().Add(5 * time.Second)
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := s.h.Conn().RequestWithContext(rctx, semantics.GroupDelete, req)
		cancel()
		if err == nil {
			var resp struct {
				Error *semantics.APIError `json:"error,omitempty"`
			}
			if json.Unmarshal(m.Data, &resp) == nil {
				err = resp.Error.Err()
			}
		}
		if err == nil || errors.Is(err, semantics.ErrGroupIDNotFound) || time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil && !errors.Is(err, semantics.ErrGroupIDNotFound) {
				s.log.Warn("consumer group of a deleted bridge not deleted; delete it with 'qxd group delete'",
					"bridge", b.Name, "group", semantics.BridgeGroup(b.Name), "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// describeBridge renders a definition in one line, for messages.
func describeBridge(b semantics.Bridge) string {
	switch {
	case b.Capture:
		return fmt.Sprintf("%s (captured in stream %s) → topic %s", b.From, b.Stream, b.Topic)
	case streamSource(b):
		return fmt.Sprintf("stream %s → topic %s", b.Stream, b.Topic)
	case b.Kind == semantics.BridgeIngest:
		return fmt.Sprintf("%s → topic %s", b.From, b.Topic)
	}
	return fmt.Sprintf("topic %s → %s", b.Topic, b.To)
}
