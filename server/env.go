package server

import (
	"context"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/qxd-io/qxd/semantics"
)

// What the node's parts need from the node, each as a narrow interface declared
// here once: the writers, the group coordinator's host and the admin service take
// these, not the *Node, so that each can be built, read and tested on its own and a
// second front door reaches them without going through the first.

// streamLeadership tells whether this node leads a stream (always, on a single
// node). *Node implements it.
type streamLeadership interface {
	isStreamLeader(stream string) bool
}

// topicStore reads topic records (the qxd_topics bucket); an unknown topic is
// semantics.ErrUnknownTopic. *metadata implements it.
type topicStore interface {
	getTopic(ctx context.Context, name string) (semantics.TopicMeta, error)
	getTopicQuick(ctx context.Context, name string) (semantics.TopicMeta, error)
	getTopicLeader(ctx context.Context, name string) (semantics.TopicMeta, error)
}

// checkpointStore keeps the partition writers' checkpoints (the qxd_partitions
// bucket). *metadata implements it.
type checkpointStore interface {
	getCheckpoint(ctx context.Context, topicID string, p int32) (semantics.Checkpoint, error)
	readCheckpoint(ctx context.Context, topicID string, p int32) (c semantics.Checkpoint, fromLeader bool, err error)
	putCheckpoint(ctx context.Context, topicID string, p int32, c semantics.Checkpoint) error
}

// placement places partitions on the cluster's nodes: how many nodes can hold a
// replica, and moving leaders and replicas (leaders.go). *Node implements it.
type placement interface {
	clusterSize() int
	BalanceLeaders(ctx context.Context, topics []semantics.TopicMeta) (int, error)
	RebalanceTopic(ctx context.Context, t semantics.TopicMeta) ([]string, int, error)
	handOffVia(ctx context.Context, leader, stream, prefer string) error
}

// topicFollowers are the parts of a node that follow the topic records — the
// partition writers, the clients' permissions — told at once of a change this node
// made, before the topics watch reports it.
type topicFollowers interface {
	topicChanged(ctx context.Context, t semantics.TopicMeta)
	topicRemoved(ctx context.Context, name string)
}

// topicOffsets removes the committed offsets of a deleted topic (offsets.Store).
type topicOffsets interface {
	DeleteTopicOffsets(ctx context.Context, topic string) (int, error)
}

// serverView is what the admin service reads of the embedded server: its name and
// address and JetStream's meta group. *natsserver.Server implements it.
type serverView interface {
	Name() string
	ClientURL() string
	ClusterName() string
	JetStreamIsClustered() bool
	Jsz(opts *natsserver.JSzOptions) (*natsserver.JSInfo, error)
}

var (
	_ checkpointStore = (*metadata)(nil)
	_ topicStore      = (*metadata)(nil)
	_ serverView      = (*natsserver.Server)(nil)
)
