package qxd

import (
	"context"
	"fmt"

	"github.com/qxd-io/qxd/semantics"
)

// TopicConfig is a topic's configuration; see semantics.TopicConfig for fields and
// defaults.
type TopicConfig = semantics.TopicConfig

// TopicInfo is a topic's record: name, id, config, state, creation time.
type TopicInfo = semantics.TopicMeta

// PartitionInfo describes one partition: leader, replicas, offsets, size.
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
	if err := a.c.request(ctx, topicAPISubject(semantics.APITopicCreate, name), semantics.CreateTopicRequest{Name: name, Config: cfg}, &resp); err != nil {
		return TopicInfo{}, fmt.Errorf("create topic %q: %w", name, err)
	}
	return topicResult(resp)
}

// DeleteTopic deletes a topic and all its records.
func (a *Admin) DeleteTopic(ctx context.Context, name string) error {
	var resp semantics.TopicResponse
	if err := a.c.request(ctx, topicAPISubject(semantics.APITopicDelete, name), semantics.TopicRequest{Name: name}, &resp); err != nil {
		return fmt.Errorf("delete topic %q: %w", name, err)
	}
	_, err := topicResult(resp)
	return err
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

// RebalanceResult is what a rebalance did.
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
	if err := a.c.request(ctx, semantics.APITopicList, struct{}{}, &resp); err != nil {
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
	if err := a.c.request(ctx, topicAPISubject(semantics.APITopicDescribe, name), semantics.TopicRequest{Name: name}, &resp); err != nil {
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
