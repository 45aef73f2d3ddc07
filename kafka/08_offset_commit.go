package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/semantics"
)

// OffsetCommit stores a group's offsets through the coordinator, fenced by member
// and generation (generation -1 with no member: a group without members, as
// Kafka's standalone consumers commit). The offsets are the SDK's: qxd's CLI and
// SDK see them, and the other way round.
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
