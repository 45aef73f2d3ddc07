package kafka

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// CreateTopics makes ordinary qxd topics: partitions, replication factor (1, 3 or
// 5; -1 the default, 1) and the configs retention.ms, retention.bytes,
// max.message.bytes, cleanup.policy and delete.retention.ms. Manual replica
// assignments are refused: JetStream places replicas.
func handleCreateTopics(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.CreateTopicsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, t := range req.Topics {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic = t.Topic
			rt.NumPartitions, rt.ReplicationFactor = -1, -1
			tm, err := createTopic(ctx, c, req, t)
			rt.ErrorCode, rt.ErrorMessage = code(err), message(err)
			if err == nil {
				rt.NumPartitions, rt.ReplicationFactor = tm.Config.Partitions, int16(tm.Config.Replicas)
				if id, err := base64.RawURLEncoding.DecodeString(tm.ID); err == nil && len(id) == 16 {
					copy(rt.TopicID[:], id)
				}
				for _, tc := range topicConfigs(tm) {
					rc := kmsg.NewCreateTopicsResponseTopicConfig()
					v := tc.value
					rc.Name, rc.Value, rc.ReadOnly, rc.Source = tc.name, &v, tc.readOnly, int8(tc.source())
					rt.Configs = append(rt.Configs, rc)
				}
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}

func createTopic(ctx context.Context, c *conn, req *kmsg.CreateTopicsRequest, t kmsg.CreateTopicsRequestTopic) (semantics.TopicMeta, error) {
	if len(t.ReplicaAssignment) > 0 {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrInvalidRequest,
			"topic %q: replica assignments cannot be given: JetStream places each partition's replicas; give a partition count and replication factor", t.Topic)
	}
	configs := map[string]string{}
	for _, cfg := range t.Configs {
		if cfg.Value == nil {
			continue
		}
		if _, dup := configs[cfg.Name]; dup {
			return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrInvalidConfig, "topic %q: config %s is given twice", t.Topic, cfg.Name)
		}
		configs[cfg.Name] = *cfg.Value
	}
	partitions := max(t.NumPartitions, 0) // -1: the default
	if t.NumPartitions == 0 {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrInvalidPartitions, "topic %q: 0 partitions: give at least 1", t.Topic)
	}
	replicas := max(int(t.ReplicationFactor), 0)
	if t.ReplicationFactor == 0 {
		return semantics.TopicMeta{}, semantics.Errorf(semantics.ErrInvalidReplicationFactor, "topic %q: replication factor 0: use 1, 3 or 5", t.Topic)
	}
	tm, err := c.b.CreateTopic(ctx, t.Topic, partitions, replicas, configs, req.ValidateOnly)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		return tm, semantics.Errorf(semantics.ErrTimeout, "topic %q: create did not finish in time: %v", t.Topic, err)
	}
	return tm, err
}
