package kafka

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// OffsetCommit stores a group's offsets through the coordinator, fenced by member
// and generation (generation -1 with no member: a group without members, as
// Kafka's standalone consumers commit). The offsets are the SDK's: qxd's CLI and
// SDK see them, and the other way round. From v9 a commit with a generation (0
// or more) to a group that does not exist — no members and no committed offsets
// — is GROUP_ID_NOT_FOUND, as Kafka answers a classic group (KIP-848); before v9
// it stays UNKNOWN_MEMBER_ID, which sends the member to join again. v10 names
// topics by id (UNKNOWN_TOPIC_ID for an id no topic has). An offset of -1 (latest)
// or -2 (earliest), which KafkaJS's resetOffsets commits, clears the partition's
// position under the same fencing (the SDK and `qxd group describe` then see no
// committed offset; OffsetFetch hands the offset back); any other negative offset
// is INVALID_REQUEST.
func handleOffsetCommit(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.OffsetCommitRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		cr := groups.CommitRequest{Group: req.Group, MemberID: req.MemberID, Generation: req.Generation}
		if req.InstanceID != nil {
			cr.InstanceID = *req.InstanceID
		}
		// v10 names topics by id: each is resolved to its topic, and the commit
		// carries the id, so that it is refused if the topic was made again since.
		topicErr := make([]error, len(req.Topics))
		for i, t := range req.Topics {
			name, id := t.Topic, ""
			if req.Version >= 10 {
				if name, topicErr[i] = topicByID(ctx, c, t.TopicID); topicErr[i] != nil {
					continue
				}
				id = base64.RawURLEncoding.EncodeToString(t.TopicID[:])
			}
			for _, p := range t.Partitions {
				e := semantics.OffsetEntry{Topic: name, Partition: p.Partition, Offset: p.Offset, TopicID: id}
				if p.Metadata != nil {
					e.Metadata = *p.Metadata
				}
				cr.Offsets = append(cr.Offsets, e)
			}
		}
		var err error
		if len(cr.Offsets) > 0 || len(req.Topics) == 0 {
			err = c.b.CommitOffsets(ctx, cr)
		}
		if req.Version >= 9 && req.Generation >= 0 && errors.Is(err, semantics.ErrUnknownMemberID) {
			if _, derr := c.b.DescribeGroup(ctx, req.Group); errors.Is(derr, semantics.ErrGroupIDNotFound) {
				err = derr
			}
		}
		for i, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code(err)
				if topicErr[i] != nil {
					rp.ErrorCode = code(topicErr[i])
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}

// topicByID returns the name of the topic with id, for the versions that name
// topics by id; an id no topic has is UNKNOWN_TOPIC_ID.
func topicByID(ctx context.Context, c *conn, id [16]byte) (string, error) {
	name, err := c.b.TopicByID(ctx, id)
	if errors.Is(err, semantics.ErrUnknownTopic) {
		return "", &codeError{code: codeUnknownTopicID, msg: err.Error()}
	}
	return name, err
}
