package kafka

import (
	"context"
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
// it stays UNKNOWN_MEMBER_ID, which sends the member to join again.
func handleOffsetCommit(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.OffsetCommitRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		cr := groups.CommitRequest{Group: req.Group, MemberID: req.MemberID, Generation: req.Generation}
		if req.InstanceID != nil {
			cr.InstanceID = *req.InstanceID
		}
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				e := semantics.OffsetEntry{Topic: t.Topic, Partition: p.Partition, Offset: p.Offset}
				if p.Metadata != nil {
					e.Metadata = *p.Metadata
				}
				cr.Offsets = append(cr.Offsets, e)
			}
		}
		err := c.b.CommitOffsets(ctx, cr)
		if req.Version >= 9 && req.Generation >= 0 && errors.Is(err, semantics.ErrUnknownMemberID) {
			if _, derr := c.b.DescribeGroup(ctx, req.Group); errors.Is(derr, semantics.ErrGroupIDNotFound) {
				err = derr
			}
		}
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code(err)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}
