package qxd

import (
	"context"
	"fmt"

	"github.com/qxd-io/qxd/semantics"
)

// TopicConfig is a topic's configuration; see semantics.TopicConfig for fields and
// defaults. It is part of the wire
// contract (the admin API's JSON form), shared with the node and the CLI.
type TopicConfig = semantics.TopicConfig

// TopicInfo is a topic's record: name, id, config, state, creation time. It is part of the wire
// contract (the admin API's JSON form), shared with the node and the CLI.
type TopicInfo = semantics.TopicMeta

// PartitionInfo describes one partition: leader, replicas, offsets, size. It is part of the wire
// contract (the admin API's JSON form), shared with the node and the CLI.
type PartitionInfo = semantics.PartitionInfo

// TopicDescription is a topic with its partitions.
type TopicDescription struct {
	Topic      TopicInfo
	Partitions []PartitionInfo
}

// Admin manages topics. Get one from Client.Admin.
type Admin struct{ c *Client }

// Admin returns the client's topic administration API.
func (c *Client) Admin() *Admin { return &Admin{c: c} }

// CreateTopic creates a topic. Zero config fields take their defaults. Creating a
// topic that exists fails with semantics.ErrTopicExists; a create that failed half-way
// is finished by calling CreateTopic again with the same config.
func (a *Admin) CreateTopic(ctx context.Context, name string, cfg TopicConfig) (TopicInfo, error) {
	var resp semantics.TopicResponse
	req := semantics.CreateTopicRequest{Name: name, Config: cfg, Token: newCreateToken()}
	if err := a.c.request(ctx, topicAPISubject(semantics.APITopicCreate, name), req, &resp); err != nil {
		return TopicInfo{}, fmt.Errorf("create topic %q: %w", name, err)
	}
	return topicResult(resp)
}

// newCreateToken names one create call (semantics.CreateTopicRequest.Token): the
// client sends a request again when a node answers that it could not finish it
// (ErrUnavailable), and the node may have made the topic all the same; with the
// token it answers the call as the topic's creator, not TOPIC_ALREADY_EXISTS.
func newCreateToken() string {
	return semantics.NewTopicID() // 16 random bytes, as a topic id
}

// CreateTopicIfNotExists creates a topic unless one of that name is ready already
// (kafka-topics --create --if-not-exists): then it returns that topic, whatever its
// config, with created false.
func (a *Admin) CreateTopicIfNotExists(ctx context.Context, name string, cfg TopicConfig) (t TopicInfo, created bool, err error) {
	var resp semantics.TopicResponse
	req := semantics.CreateTopicRequest{Name: name, Config: cfg, IfNotExists: true, Token: newCreateToken()}
	if err := a.c.request(ctx, topicAPISubject(semantics.APITopicCreate, name), req, &resp); err != nil {
		return TopicInfo{}, false, fmt.Errorf("create topic %q: %w", name, err)
	}
	t, err = topicResult(resp)
	return t, err == nil && !resp.Existed, err
}

// DeleteTopic deletes a topic and all its records.
func (a *Admin) DeleteTopic(ctx context.Context, name string) error {
	_, err := a.deleteTopic(ctx, name, false)
	return err
}

// DeleteTopicIfExists deletes a topic if it exists (kafka-topics --delete
// --if-exists); deleted is false when there was none.
func (a *Admin) DeleteTopicIfExists(ctx context.Context, name string) (deleted bool, err error) {
	return a.deleteTopic(ctx, name, true)
}

func (a *Admin) deleteTopic(ctx context.Context, name string, ifExists bool) (bool, error) {
	var resp semantics.TopicResponse
	if err := a.c.request(ctx, topicAPISubject(semantics.APITopicDelete, name), semantics.DeleteTopicRequest{Name: name, IfExists: ifExists}, &resp); err != nil {
		return false, fmt.Errorf("delete topic %q: %w", name, err)
	}
	if err := resp.Failure(); err != nil {
		return false, err
	}
	return resp.Topic != nil, nil
}

// AlterTopicConfig changes a topic's settings on every partition, as Kafka's
// incremental alter-configs does: set gives keys their values, del puts keys back to
// their default. Keys are qxd's names (semantics.ConfigKeys: retention,
// retention-bytes, max-record-bytes, delete-retention) or Kafka's (retention.ms,
// retention.bytes, max.message.bytes, delete.retention.ms). Values are strings as
// the CLI takes them: durations "3d", "12h" or -1 for no limit (a bare number for a
// .ms key is milliseconds), sizes "10GiB", "1048576" or -1. Every change is checked
// before any is made: an unknown key or a bad value fails with
// semantics.ErrInvalidConfig and changes nothing. A call that failed half-way is
// finished by calling it again.
func (a *Admin) AlterTopicConfig(ctx context.Context, name string, set map[string]string, del ...string) (TopicInfo, error) {
	var resp semantics.TopicResponse
	req := semantics.AlterTopicConfigRequest{Name: name, Set: set, Delete: del}
	if err := a.c.request(ctx, topicAPISubject(semantics.APITopicAlterConfig, name), req, &resp); err != nil {
		return TopicInfo{}, fmt.Errorf("alter topic %q: %w", name, err)
	}
	return topicResult(resp)
}

// DeleteRecords moves partition's log start offset up to offset, as Kafka's
// DeleteRecords does, and returns the log start after it: records below it are no
// longer readable, and a read from below it starts at it (or fails with
// ErrOffsetOutOfRange, by the consumer's reset policy). Offsets do not change.
// offset -1 means the high watermark: every record stored now. An offset beyond
// the high watermark fails with ErrOffsetOutOfRange and names the range; an offset
// at or below the log start changes nothing. A compacted topic cannot be trimmed
// (semantics.ErrPolicyViolation). Whole batches below the new log start are
// removed from storage; see docs/architecture.md for the batch that holds it.
func (a *Admin) DeleteRecords(ctx context.Context, topic string, partition int32, offset int64) (int64, error) {
	var resp semantics.DeleteRecordsResponse
	req := semantics.DeleteRecordsRequest{Name: topic, Partition: partition, Offset: offset}
	if err := a.c.request(ctx, topicAPISubject(semantics.APITopicDeleteRecords, topic), req, &resp); err != nil {
		return 0, fmt.Errorf("trim %s: %w", semantics.PartitionString(topic, partition), err)
	}
	if err := resp.Failure(); err != nil {
		return 0, err
	}
	return resp.LogStartOffset, nil
}

// AddPartitions raises a topic's partition count to total. Keyed records then map to
// partitions as Kafka's do after the same change.
func (a *Admin) AddPartitions(ctx context.Context, name string, total int32) (TopicInfo, error) {
	var resp semantics.TopicResponse
	if err := a.c.request(ctx, topicAPISubject(semantics.APITopicAddPartitions, name), semantics.AddPartitionsRequest{Name: name, Total: total}, &resp); err != nil {
		return TopicInfo{}, fmt.Errorf("add partitions to %q: %w", name, err)
	}
	return topicResult(resp)
}

// Topic returns one topic's record (config, id, state), read from the topics
// bucket without touching its streams. A topic that is half-created or half-deleted
// is returned with semantics.ErrTopicNotReady.
func (a *Admin) Topic(ctx context.Context, name string) (TopicInfo, error) {
	return a.c.topic(ctx, name)
}

// RebalanceResult is what a rebalance did. It is part of the wire
// contract (the admin API's JSON form), shared with the node and the CLI.
type RebalanceResult = semantics.RebalanceResponse

// RebalanceTopic spreads a replicated topic's partition replicas over the cluster's
// nodes (for instance onto a node added since the topic was created), then its
// partition leaderships. Each replica move completes (the new replica has the data)
// before the next starts.
func (a *Admin) RebalanceTopic(ctx context.Context, name string) (RebalanceResult, error) {
	var resp semantics.RebalanceResponse
	if err := a.c.request(ctx, topicAPISubject(semantics.APITopicRebalance, name), semantics.TopicRequest{Name: name}, &resp); err != nil {
		return resp, fmt.Errorf("rebalance topic %q: %w", name, err)
	}
	return resp, resp.Error.Err()
}

// ListTopics lists every topic from the topics bucket (no stream is read).
func (a *Admin) ListTopics(ctx context.Context) ([]TopicInfo, error) {
	var resp semantics.ListTopicsResponse
	if err := a.c.query(ctx, semantics.APITopicList, struct{}{}, &resp); err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	if err := resp.Error.Err(); err != nil {
		return nil, err
	}
	return resp.Topics, nil
}

// DescribeTopic returns a topic and, per partition, its leader, replicas, log start
// offset, high watermark and record count.
func (a *Admin) DescribeTopic(ctx context.Context, name string) (TopicDescription, error) {
	var resp semantics.DescribeTopicResponse
	if err := a.c.query(ctx, topicAPISubject(semantics.APITopicDescribe, name), semantics.TopicRequest{Name: name}, &resp); err != nil {
		return TopicDescription{}, fmt.Errorf("describe topic %q: %w", name, err)
	}
	if err := resp.Error.Err(); err != nil {
		return TopicDescription{}, err
	}
	return TopicDescription{Topic: *resp.Topic, Partitions: resp.Partitions}, nil
}

func topicResult(resp semantics.TopicResponse) (TopicInfo, error) {
	if err := resp.Error.Err(); err != nil {
		return TopicInfo{}, err
	}
	if resp.Topic == nil {
		return TopicInfo{}, semantics.Errorf(semantics.ErrInvalidRequest, "response without topic")
	}
	return *resp.Topic, nil
}
