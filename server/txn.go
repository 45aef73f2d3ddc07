package server

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// txnService runs the transaction coordinator on the node that leads the groups
// bucket's stream, beside the group coordinator, so one node coordinates every
// transactional id at a time (RAFT leadership). It follows the groups bucket, not
// its own: Kafka clients send TxnOffsetCommit to their group's coordinator, and
// that node must be able to answer it. The transactions themselves are stored in
// the transactions bucket. A node taking over loads them and finishes the ends
// they record as decided.
type txnService struct {
	log     *slog.Logger
	leads   streamLeadership
	kv      jetstream.KeyValue
	markers markerWriter
	offsets txnOffsetStore
	topics  topicStore
	groups  txnGroups
	stream  string

	live atomic.Pointer[txnCoordinator]

	mu     sync.Mutex
	coord  *txnCoordinator
	closed bool

	cancel context.CancelFunc
	loop   sync.WaitGroup
}

func newTxnService(ctx context.Context, log *slog.Logger, js jetstream.JetStream, leads streamLeadership, replicas int,
	markers markerWriter, offs *offsets.Store, topics topicStore, gs txnGroups) (*txnService, error) {
	kv, err := openBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket: semantics.TxnsBucket, Description: "qxd transactions", History: 1,
		Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, err
	}
	return &txnService{log: log, leads: leads, kv: kv, markers: markers, offsets: offs, topics: topics, groups: gs,
		stream: semantics.KVStream(semantics.GroupsBucket)}, nil
}

// run reconciles coordinating with leadership every reconcileEvery until stop.
func (s *txnService) run() {
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

func (s *txnService) reconcile(ctx context.Context) {
	leader := s.leads.isStreamLeader(s.stream)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
	case leader && s.coord == nil:
		ctx, cancel := context.WithTimeout(ctx, groupStartTimeout)
		defer cancel()
		c := newTxnCoordinator(s.log, s.kv, s.markers, s.offsets, s.topics, s.groups)
		if err := c.load(ctx); err != nil {
			s.log.Warn("transaction coordinator did not start; will retry", "err", err)
			return
		}
		s.coord = c
		s.live.Store(c)
		s.log.Info("transaction coordinator started")
	case !leader && s.coord != nil:
		s.stopLocked()
		s.log.Info("transaction coordinator moved to another node")
	}
}

func (s *txnService) stopLocked() {
	if s.coord != nil {
		s.live.Store(nil)
		s.coord.close()
		s.coord = nil
	}
}

func (s *txnService) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.loop.Wait()
	s.mu.Lock()
	s.closed = true
	s.stopLocked()
	s.mu.Unlock()
}
