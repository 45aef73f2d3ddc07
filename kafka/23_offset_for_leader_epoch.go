package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetForLeaderEpoch: for each partition, the greatest leader epoch at or below
// the one asked and the offset where it ended, from the epochs the writers stamp
// on the batches they append (Kafka's leader epoch cache). Clients ask it after a
// change of leader to find out whether the log they read was truncated; qxd never
// truncates what it acknowledged, and the answers say so. Asked of a node that does
// not lead the partition: NOT_LEADER_OR_FOLLOWER.
func handleOffsetForLeaderEpoch(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
				rp.Partition, rp.LeaderEpoch, rp.EndOffset = p.Partition, -1, -1
				if err := c.allowDescribeTopic(t.Topic); err != nil {
					rp.ErrorCode = code(err)
				} else if rp.ErrorCode = checkLeaderEpoch(ctx, c.b, t.Topic, p.Partition, p.CurrentLeaderEpoch); rp.ErrorCode == 0 {
					epoch, end, err := c.b.EpochEnd(ctx, t.Topic, p.Partition, p.LeaderEpoch)
					if rp.ErrorCode = code(err); rp.ErrorCode == 0 {
						rp.LeaderEpoch, rp.EndOffset = epoch, end
					}
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}
