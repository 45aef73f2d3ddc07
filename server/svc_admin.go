package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/semantics"
)

// Admin is the admin service of a node: topics (create, delete, alter config, add
// partitions, trim, describe, list, rebalance) and the cluster's info and
// metadata, in process. Its methods take typed requests and return typed answers
// and errors (semantics.Error kinds, with Kafka's codes); the NATS door
// (semantics.API* subjects, admin_nats.go) only decodes, calls and encodes, and a
// Kafka listener calls the same methods. Any node serves it. The operations are in
// admin.go, admin_config.go, admin_trim.go, admin_metadata.go and cluster.go.
type Admin struct {
	log     *slog.Logger
	nc      *nats.Conn // JetStream API requests, partition reads, node addresses
	js      jetstream.JetStream
	meta    *metadata // topic records and checkpoints
	ns      serverView
	place   placement
	follow  topicFollowers
	offsets topicOffsets
	stable  *stableOffsets         // partitions' last stable offsets, for describe
	sync    time.Duration          // the node's sync interval (0: every append), for node info
	kafka   atomic.Pointer[string] // the Kafka listener's advertised host:port, for node info
	// reaches says which other nodes this one reaches, for node info
	// (semantics.BrokerInfo.Reaches); nil: none.
	reaches func() map[string]int64
	repairs repairCounts // the repairs this node ran, by result
	scrubs  scrubCounts  // what this node's scrub read and found
	// repairing are the partition streams a repair runs on in this node now.
	repairing sync.Map
}

// TopicDescription is a topic's record and its partitions' state.
type TopicDescription struct {
	Topic      semantics.TopicMeta
	Partitions []semantics.PartitionInfo
}

// Trimmed is what a trim (DeleteRecords) did.
type Trimmed struct {
	// LogStartOffset is the partition's log start offset after the trim.
	LogStartOffset int64
	// Batches is the number of stored batches removed.
	Batches uint64
}

// Rebalanced is what RebalanceTopic did: the replica moves ("topic/p: from → to")
// and how many partition leaderships moved.
type Rebalanced struct {
	Moves        []string
	LeadersMoved int
}

// CreateTopic creates req.Name with req.Config (defaults applied here), or finishes
// a create that stopped half-way. A ready topic of that name is TOPIC_ALREADY_EXISTS,
// unless req.IfNotExists: then existed is true and t is the topic as it is; or
// unless the topic was made by a request with req.Token (this request, sent
// again after its answer was lost): then it is answered as created.
func (a *Admin) CreateTopic(ctx context.Context, req semantics.CreateTopicRequest) (t semantics.TopicMeta, existed bool, err error) {
	t, err = a.createTopic(ctx, req.Name, req.Config, req.Token)
	if req.IfNotExists && errors.Is(err, semantics.ErrTopicExists) && t.State == semantics.TopicReady {
		return t, true, nil
	}
	return t, false, err
}

// DeleteTopic deletes req.Name: its partitions' streams, checkpoints and committed
// offsets, then its record; a retry finishes a delete that stopped half-way. An
// unknown topic is UNKNOWN_TOPIC_OR_PARTITION, unless req.IfExists: then it returns
// the zero TopicMeta and no error.
func (a *Admin) DeleteTopic(ctx context.Context, req semantics.DeleteTopicRequest) (semantics.TopicMeta, error) {
	t, err := a.deleteTopic(ctx, req.Name)
	if req.IfExists && errors.Is(err, semantics.ErrUnknownTopic) {
		return semantics.TopicMeta{}, nil
	}
	return t, err
}

// AddPartitions raises req.Name's partition count to req.Total.
func (a *Admin) AddPartitions(ctx context.Context, req semantics.AddPartitionsRequest) (semantics.TopicMeta, error) {
	return a.addPartitions(ctx, req.Name, req.Total)
}
