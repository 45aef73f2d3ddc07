package server

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go"
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
	nc      *nats.Conn // for reads from the bucket's leader
	kv      jetstream.KeyValue
	markers markerWriter
	offsets txnOffsetStore
	topics  topicStore
	groups  txnGroups

	role leaderRole[txnCoordinator]
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
	s := &txnService{nc: js.Conn(), kv: kv, markers: markers, offsets: offs, topics: topics, groups: gs}
	s.role = leaderRole[txnCoordinator]{log: log, leads: leads, stream: semantics.KVStream(semantics.GroupsBucket),
		logs: roleLogs{
			started: "transaction coordinator started",
			failed:  "transaction coordinator did not start; will retry",
			moved:   "transaction coordinator moved to another node",
		},
		start: func(ctx context.Context) (*txnCoordinator, error) {
			c := newTxnCoordinator(log, s.nc, s.kv, s.markers, s.offsets, s.topics, s.groups)
			if err := c.load(ctx); err != nil {
				return nil, err
			}
			return c, nil
		},
		stop: (*txnCoordinator).close,
	}
	return s, nil
}

// run follows leadership of the groups bucket's stream until stop.
func (s *txnService) run() { s.role.run() }

func (s *txnService) stop() { s.role.close() }
