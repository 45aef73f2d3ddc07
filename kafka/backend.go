package kafka

import (
	"context"
	"time"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// Backend is what the listener needs from the node it runs on. Errors carry Kafka's
// codes as semantics errors (semantics.CodeOf); anything else is answered as
// UNKNOWN_SERVER_ERROR.
type Backend interface {
	// Cluster returns the brokers and the metadata of topics (every topic when
	// topics is nil). A topic asked for that does not exist is returned with its
	// Err set.
	Cluster(ctx context.Context, topics []string) (Cluster, error)
	// Self returns the cluster id and this node's broker id, as Cluster gives
	// them (ApiVersions v5 checks a client's idea of both). It must not block
	// on other nodes.
	Self(ctx context.Context) (clusterID string, brokerID int32)
	// Append sends one RecordBatch v2 to a partition's writer, as the client sent
	// it; the writer gives it its offsets. Append returns once the batch is on its
	// way, without blocking on the writer, so batches appended one after the other
	// reach the writer in that order; wait blocks until the writer answered (or
	// ctx ends). With acks 0 nobody calls wait.
	Append(ctx context.Context, topic string, partition int32, batch []byte, acks int16) (wait func() (AppendResult, error))
	// Read returns stored batches of a partition from the one holding offset, as
	// stored, until their total passes maxBytes (at least one batch is returned
	// when there is one, whatever its size), with the partition's log start and
	// high watermark. An offset outside [log start, high watermark] is
	// semantics.ErrOffsetOutOfRange.
	Read(ctx context.Context, topic string, partition int32, offset int64, maxBytes int) (ReadResult, error)
	// Offsets returns a partition's log start and high watermark.
	Offsets(ctx context.Context, topic string, partition int32) (logStart, highWatermark int64, err error)
	// OffsetForTime returns the first offset whose record's timestamp is at or after
	// ts (Unix milliseconds) and that record's timestamp; -1, -1 when there is none.
	OffsetForTime(ctx context.Context, topic string, partition int32, ts int64) (offset, timestamp int64, err error)
	// MaxTimestamp returns the offset and timestamp of the partition's record
	// with the largest timestamp (the first one when several have it), at or
	// after its log start, and the leader epoch of its batch; -1, -1, -1 when
	// none is stored. It is answered on the node leading the partition
	// (semantics.ErrNotLeader elsewhere).
	MaxTimestamp(ctx context.Context, topic string, partition int32) (offset, timestamp int64, epoch int32, err error)
	// LeaderEpoch returns a partition's leader epoch as this node knows it; -1 when
	// it does not (it holds no replica, or the partition has no leader).
	LeaderEpoch(ctx context.Context, topic string, partition int32) int32
	// EpochEnd answers OffsetForLeaderEpoch on the partition's leader: the
	// greatest epoch at or below epoch that the partition had, and the offset
	// where it ended (the high watermark for the current epoch); -1, -1 for an
	// epoch above the current one.
	EpochEnd(ctx context.Context, topic string, partition int32, epoch int32) (int32, int64, error)
	// Watch returns a Watch that is woken when a batch is appended to any of the
	// partitions, from the moment Watch returns.
	Watch(ctx context.Context, parts []semantics.TopicPartition) (Watch, error)

	// Coordinator returns the node that coordinates group (FindCoordinator).
	Coordinator(ctx context.Context, group string) (Broker, error)
	// The group coordinator's requests, as qxd's SDK sends them.
	Join(ctx context.Context, req groups.JoinRequest) (groups.JoinResponse, error)
	Sync(ctx context.Context, req groups.SyncRequest) (groups.SyncResponse, error)
	Heartbeat(ctx context.Context, req groups.HeartbeatRequest) error
	Leave(ctx context.Context, req groups.LeaveRequest) error
	CommitOffsets(ctx context.Context, req groups.CommitRequest) error
	FetchOffsets(ctx context.Context, req groups.FetchRequest) ([]semantics.OffsetEntry, error)
	DescribeGroup(ctx context.Context, group string) (groups.GroupDescription, error)
	ListGroups(ctx context.Context) ([]groups.GroupSummary, error)

	// DeleteOffsets deletes group's committed offsets of topic's partitions
	// (OffsetDelete); semantics.ErrGroupSubscribedToTopic while members consume
	// the topic.
	DeleteOffsets(ctx context.Context, group, topic string, partitions []int32) error

	// DeleteGroup deletes a group without members and its committed offsets.
	DeleteGroup(ctx context.Context, group string) error

	// ProducerID allocates an idempotent producer id (Kafka's InitProducerId), from
	// the same space as the SDK's producers.
	ProducerID(ctx context.Context) (int64, error)

	// CreateTopic creates a topic with partitions and replicas (0: the default)
	// and configs by Kafka's names (retention.ms, retention.bytes,
	// max.message.bytes, cleanup.policy, delete.retention.ms); validateOnly checks
	// everything and creates nothing.
	CreateTopic(ctx context.Context, name string, partitions int32, replicas int, configs map[string]string, validateOnly bool) (semantics.TopicMeta, error)
	// DeleteTopic deletes a topic and everything stored for it.
	DeleteTopic(ctx context.Context, name string) error
	// AddPartitions raises a topic's partition count to total.
	AddPartitions(ctx context.Context, name string, total int32, validateOnly bool) error
	// AlterConfig sets and deletes (back to the default) a topic's configs, by
	// Kafka's names; validateOnly checks and changes nothing.
	AlterConfig(ctx context.Context, topic string, set map[string]string, del []string, validateOnly bool) error
	// DeleteRecords moves a partition's log start up to offset (-1: the high
	// watermark) and returns the log start after it.
	DeleteRecords(ctx context.Context, topic string, partition int32, offset int64) (int64, error)
	// TopicByID returns the name of the topic with id (Kafka's topic id, the
	// topic record's); semantics.ErrUnknownTopic when there is none.
	TopicByID(ctx context.Context, id [16]byte) (string, error)
	// Topic reads a topic's record; semantics.ErrUnknownTopic when there is none.
	Topic(ctx context.Context, name string) (semantics.TopicMeta, error)
}

// Broker is one node as Kafka's Metadata shows it.
type Broker struct {
	// ID is the node's broker id, stable across restarts (derived from its name).
	ID   int32
	Name string
	// Host and Port are the node's Kafka listener address (advertised).
	Host string
	Port int32
}

// Cluster is a Metadata answer.
type Cluster struct {
	// ClusterID names the cluster; ControllerID is the broker leading JetStream's
	// meta group (-1 when none).
	ClusterID    string
	ControllerID int32
	Brokers      []Broker
	Topics       []TopicInfo
}

// TopicInfo is one topic in a Cluster.
type TopicInfo struct {
	Name string
	// ID is the topic's 16-byte id.
	ID         [16]byte
	Partitions []PartitionInfo
	// Err is set for a topic that was asked for and cannot be described.
	Err error
}

// PartitionInfo is one partition in a Cluster: broker ids.
type PartitionInfo struct {
	Partition int32
	Leader    int32 // -1 while the partition has no leader
	// LeaderEpoch grows with every change of the partition's leader; -1 unknown.
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
	Offline     []int32
	// FormerLeader: Leader is this node, as its view of the partition still
	// says, although it no longer leads it (a node woken from a pause, whose
	// RAFT group stepped down before it heard who leads now, or an election is
	// under way). Metadata names it all the same: clients keep sending there,
	// and the answer NOT_LEADER_OR_FOLLOWER names the new leader once it is
	// known, where a partition without a leader has franz-go wait up to 5 s
	// (its MetadataMinAge) before it asks again. A produce answer's hint never
	// names a former leader.
	FormerLeader bool
}

// AppendResult is the answer to an Append.
type AppendResult struct {
	BaseOffset    int64
	LogAppendTime time.Time
	LogStart      int64
}

// ReadResult is the answer to a Read.
type ReadResult struct {
	// Batches are stored RecordBatches, in offset order, each as stored.
	Batches       [][]byte
	LogStart      int64
	HighWatermark int64
	// Release, when set, gives the memory holding Batches back to the backend:
	// the listener calls it once, when it no longer uses them (the answer
	// holding them written, or dropped).
	Release func()
}

// Watch is woken by appends to the partitions it watches.
type Watch interface {
	// C receives a value after an append (at most one pending).
	C() <-chan struct{}
	// Close stops the watch.
	Close()
}
