package kafka

import (
	"context"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// authorized is a connection's Backend on a listener with Auth: each call is
// checked against the connection's Grant first, the same rights the NATS port
// enforces, and refused with Kafka's codes (TOPIC_AUTHORIZATION_FAILED,
// GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED) before it reaches the
// node: a topic without rights is refused whether it exists or not.
type authorized struct {
	Backend
	c *conn
}

var _ Backend = authorized{}

func (a authorized) Cluster(ctx context.Context, topics []string) (Cluster, error) {
	// Topics asked for by name without any right on them are not looked up.
	var ask []string
	if topics != nil {
		ask = []string{}
		for _, t := range topics {
			if a.c.describesTopic(t) {
				ask = append(ask, t)
			}
		}
	}
	cl, err := a.Backend.Cluster(ctx, ask)
	if err != nil {
		return cl, err
	}
	// A listing of every topic leaves out those without rights, as Kafka does.
	kept := cl.Topics[:0]
	for _, t := range cl.Topics {
		if a.c.describesTopic(t.Name) {
			kept = append(kept, t)
		}
	}
	cl.Topics = kept
	for _, t := range topics {
		if err := a.c.allowDescribeTopic(t); err != nil {
			cl.Topics = append(cl.Topics, TopicInfo{Name: t, Err: err})
		}
	}
	return cl, nil
}

func (a authorized) Append(ctx context.Context, topic string, p int32, batch []byte, acks int16) func() (AppendResult, error) {
	if err := a.c.allowTopic(semantics.OpProduce, topic); err != nil {
		return func() (AppendResult, error) { return AppendResult{}, err }
	}
	return a.Backend.Append(ctx, topic, p, batch, acks)
}

func (a authorized) Read(ctx context.Context, topic string, p int32, offset int64, maxBytes int) (ReadResult, error) {
	if err := a.c.allowTopic(semantics.OpConsume, topic); err != nil {
		return ReadResult{LogStart: -1, HighWatermark: -1}, err
	}
	return a.Backend.Read(ctx, topic, p, offset, maxBytes)
}

func (a authorized) Offsets(ctx context.Context, topic string, p int32) (int64, int64, error) {
	if err := a.c.allowDescribeTopic(topic); err != nil {
		return -1, -1, err
	}
	return a.Backend.Offsets(ctx, topic, p)
}

func (a authorized) OffsetForTime(ctx context.Context, topic string, p int32, ts int64) (int64, int64, error) {
	if err := a.c.allowDescribeTopic(topic); err != nil {
		return -1, -1, err
	}
	return a.Backend.OffsetForTime(ctx, topic, p, ts)
}

func (a authorized) Watch(ctx context.Context, parts []semantics.TopicPartition) (Watch, error) {
	for _, tp := range parts {
		if err := a.c.allowTopic(semantics.OpConsume, tp.Topic); err != nil {
			return nil, err
		}
	}
	return a.Backend.Watch(ctx, parts)
}

func (a authorized) Coordinator(ctx context.Context, group string) (Broker, error) {
	if err := a.c.allowGroup(group); err != nil {
		return Broker{}, err
	}
	return a.Backend.Coordinator(ctx, group)
}

func (a authorized) Join(ctx context.Context, req groups.JoinRequest) (groups.JoinResponse, error) {
	if err := a.c.allowGroup(req.Group); err != nil {
		return groups.JoinResponse{}, err
	}
	return a.Backend.Join(ctx, req)
}

func (a authorized) Sync(ctx context.Context, req groups.SyncRequest) (groups.SyncResponse, error) {
	if err := a.c.allowGroup(req.Group); err != nil {
		return groups.SyncResponse{}, err
	}
	return a.Backend.Sync(ctx, req)
}

func (a authorized) Heartbeat(ctx context.Context, req groups.HeartbeatRequest) error {
	if err := a.c.allowGroup(req.Group); err != nil {
		return err
	}
	return a.Backend.Heartbeat(ctx, req)
}

func (a authorized) Leave(ctx context.Context, req groups.LeaveRequest) error {
	if err := a.c.allowGroup(req.Group); err != nil {
		return err
	}
	return a.Backend.Leave(ctx, req)
}

// CommitOffsets needs the group and consume on every topic committed, as Kafka's
// OffsetCommit needs Read on both.
func (a authorized) CommitOffsets(ctx context.Context, req groups.CommitRequest) error {
	if err := a.c.allowGroup(req.Group); err != nil {
		return err
	}
	for _, e := range req.Offsets {
		if err := a.c.allowTopic(semantics.OpConsume, e.Topic); err != nil {
			return err
		}
	}
	return a.Backend.CommitOffsets(ctx, req)
}

func (a authorized) FetchOffsets(ctx context.Context, req groups.FetchRequest) ([]semantics.OffsetEntry, error) {
	if err := a.c.allowGroup(req.Group); err != nil {
		return nil, err
	}
	return a.Backend.FetchOffsets(ctx, req)
}

func (a authorized) DescribeGroup(ctx context.Context, group string) (groups.GroupDescription, error) {
	if err := a.c.allowGroup(group); err != nil {
		return groups.GroupDescription{}, err
	}
	return a.Backend.DescribeGroup(ctx, group)
}

// ListGroups lists the groups the connection has rights on.
func (a authorized) ListGroups(ctx context.Context) ([]groups.GroupSummary, error) {
	all, err := a.Backend.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	var out []groups.GroupSummary
	for _, g := range all {
		if a.c.allowGroup(g.Group) == nil {
			out = append(out, g)
		}
	}
	return out, nil
}

func (a authorized) DeleteGroup(ctx context.Context, group string) error {
	if err := a.c.allowGroup(group); err != nil {
		return err
	}
	return a.Backend.DeleteGroup(ctx, group)
}

// ProducerID needs a produce right on some topic (Kafka: IdempotentWrite on the
// cluster or Write on a topic).
func (a authorized) ProducerID(ctx context.Context) (int64, error) {
	if a.c.grant != nil && len(a.c.grant.Produce) == 0 {
		return -1, semantics.Errorf(semantics.ErrClusterAuthorizationFailed, "user %q has no produce right on any topic, so no producer id", a.c.user)
	}
	return a.Backend.ProducerID(ctx)
}

func (a authorized) CreateTopic(ctx context.Context, name string, partitions int32, replicas int, configs map[string]string, validateOnly bool) (semantics.TopicMeta, error) {
	if err := a.c.allowTopic(semantics.OpAdmin, name); err != nil {
		return semantics.TopicMeta{}, err
	}
	return a.Backend.CreateTopic(ctx, name, partitions, replicas, configs, validateOnly)
}

func (a authorized) DeleteTopic(ctx context.Context, name string) error {
	if err := a.c.allowTopic(semantics.OpAdmin, name); err != nil {
		return err
	}
	return a.Backend.DeleteTopic(ctx, name)
}

func (a authorized) AddPartitions(ctx context.Context, name string, total int32, validateOnly bool) error {
	if err := a.c.allowTopic(semantics.OpAdmin, name); err != nil {
		return err
	}
	return a.Backend.AddPartitions(ctx, name, total, validateOnly)
}

func (a authorized) AlterConfig(ctx context.Context, topic string, set map[string]string, del []string, validateOnly bool) error {
	if err := a.c.allowTopic(semantics.OpAdmin, topic); err != nil {
		return err
	}
	return a.Backend.AlterConfig(ctx, topic, set, del, validateOnly)
}

func (a authorized) DeleteRecords(ctx context.Context, topic string, p int32, offset int64) (int64, error) {
	if err := a.c.allowTopic(semantics.OpAdmin, topic); err != nil {
		return -1, err
	}
	return a.Backend.DeleteRecords(ctx, topic, p, offset)
}

// Topic (DescribeConfigs) needs a right on the topic.
func (a authorized) Topic(ctx context.Context, name string) (semantics.TopicMeta, error) {
	if err := a.c.allowDescribeTopic(name); err != nil {
		return semantics.TopicMeta{}, err
	}
	return a.Backend.Topic(ctx, name)
}
