package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// OffsetDelete deletes a group's committed offsets of some partitions, on the
// coordinator, as Kafka does: refused for a topic the group's members consume
// (GROUP_SUBSCRIBED_TO_TOPIC, per partition), the group's errors answered for
// the whole request. It needs the group, and consume on each topic.
func handleOffsetDelete(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.OffsetDeleteRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		if err := c.allowGroup(req.Group); err != nil {
			resp.ErrorCode = code(err)
			return resp
		}
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetDeleteResponseTopic()
			rt.Topic = t.Topic
			var parts []int32
			for _, p := range t.Partitions {
				parts = append(parts, p.Partition)
			}
			ec := code(c.allowTopic(semantics.OpConsume, t.Topic))
			if ec == 0 {
				err := c.b.DeleteOffsets(ctx, req.Group, t.Topic, parts)
				switch ec = code(err); ec {
				case semantics.ErrNotCoordinator.Code, semantics.ErrCoordinatorNotAvailable.Code, semantics.ErrGroupIDNotFound.Code,
					semantics.ErrInvalidGroupID.Code:
					resp.ErrorCode = ec
					resp.Topics = nil
					return resp
				}
			}
			for _, p := range parts {
				rp := kmsg.NewOffsetDeleteResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, ec
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}
