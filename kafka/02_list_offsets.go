package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// ListOffsets: timestamp -2 is the log start, -1 the high watermark
// (read_uncommitted) or the last stable offset (read_committed, from the node
// leading the partition), any other the first record at or after that time
// (offset -1 when there is none). The leader epoch answered is the partition's
// current one; a client's current leader epoch is checked as Kafka does.
func handleListOffsets(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.ListOffsetsRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		b := c.b
		for _, t := range req.Topics {
			rt := kmsg.NewListOffsetsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition = p.Partition
				rp.LeaderEpoch = -1
				rp.Timestamp = -1
				if rp.ErrorCode = checkLeaderEpoch(ctx, b, t.Topic, p.Partition, p.CurrentLeaderEpoch); rp.ErrorCode != 0 {
					rp.Offset = -1
					rt.Partitions = append(rt.Partitions, rp)
					continue
				}
				switch p.Timestamp {
				case -1, -2:
					start, hw, err := b.Offsets(ctx, t.Topic, p.Partition)
					rp.ErrorCode = code(err)
					if p.Timestamp == -1 && req.IsolationLevel == 1 && err == nil {
						hw, err = c.stableOffset(ctx, t.Topic, p.Partition, hw)
						rp.ErrorCode = code(err)
					}
					if p.Timestamp == -1 {
						rp.Offset = hw
					} else {
						rp.Offset = start
					}
				default:
					if p.Timestamp < 0 {
						rp.ErrorCode = semantics.ErrInvalidRequest.Code
						break
					}
					off, ts, err := b.OffsetForTime(ctx, t.Topic, p.Partition, p.Timestamp)
					rp.ErrorCode = code(err)
					rp.Offset, rp.Timestamp = off, ts
				}
				if rp.ErrorCode != 0 {
					rp.Offset, rp.Timestamp = -1, -1
				} else if rp.Offset >= 0 {
					rp.LeaderEpoch = b.LeaderEpoch(ctx, t.Topic, p.Partition)
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}
