package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteRecords moves partitions' log start offsets up (qxd's trim): records below
// are no longer readable. Offset -1 is the high watermark.
func handleDeleteRecords(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.DeleteRecordsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
		for _, t := range req.Topics {
			rt := kmsg.NewDeleteRecordsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewDeleteRecordsResponseTopicPartition()
				rp.Partition = p.Partition
				start, err := c.b.DeleteRecords(ctx, t.Topic, p.Partition, p.Offset)
				rp.LowWatermark, rp.ErrorCode = start, code(err)
				if err != nil {
					rp.LowWatermark = -1
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}
