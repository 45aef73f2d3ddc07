package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// TxnOffsetCommit records a group's offsets in a producer's transaction: the
// group sees them only when the transaction commits. From v5 (KIP-890 part 2)
// the commit adds its group to the transaction itself, as AddOffsetsToTxn does. Rights as for
// OffsetCommit: the group and consume on every topic.
func handleTxnOffsetCommit(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.TxnOffsetCommitRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		err := c.allowGroup(req.Group)
		var offs []TxnOffset
		for _, t := range req.Topics {
			if err == nil {
				err = c.allowTopic(semantics.OpConsume, t.Topic)
			}
			for _, p := range t.Partitions {
				o := TxnOffset{Topic: t.Topic, Partition: p.Partition, Offset: p.Offset}
				if p.Metadata != nil {
					o.Metadata = *p.Metadata
				}
				offs = append(offs, o)
			}
		}
		if err == nil {
			var tb TxnBackend
			if tb, err = c.txns(); err == nil {
				gen, member := int32(-1), ""
				if req.Version >= 3 {
					gen, member = req.Generation, req.MemberID
				}
				if req.Version >= 5 {
					err = tb.AddOffsetsToTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group)
				}
				if err == nil {
					err = tb.TxnOffsetCommit(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group, gen, member, offs)
				}
			}
		}
		for _, t := range req.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = txnCode(req.Version, 3, err)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}
