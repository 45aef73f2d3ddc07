package kafka

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// TxnOffsetCommit records a group's offsets in a producer's transaction: the
// group sees them only when the transaction commits. From v5 (KIP-890 part 2)
// the commit adds its group to the transaction itself, as AddOffsetsToTxn does.
// v6 (KIP-1319) names topics by id, as OffsetCommit v10 does: an id no topic has
// is UNKNOWN_TOPIC_ID for its partitions (the others are committed), and each
// offset carries its topic's id, so that it is not stored if the topic is made
// again before the transaction commits; a commit with a generation (0 or more)
// to a group that does not exist is GROUP_ID_NOT_FOUND (UNKNOWN_MEMBER_ID
// before). v6's STALE_MEMBER_EPOCH is for KIP-848 groups: every qxd group is
// classic. Rights as for OffsetCommit: the group and consume on every topic.
func handleTxnOffsetCommit(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.TxnOffsetCommitRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		err := c.allowGroup(req.Group)
		topicErr := make([]error, len(req.Topics))
		var offs []TxnOffset
		for i, t := range req.Topics {
			name, id := t.Topic, ""
			if req.Version >= 6 {
				if name, topicErr[i] = topicByID(ctx, c, t.TopicID); topicErr[i] != nil {
					continue
				}
				id = base64.RawURLEncoding.EncodeToString(t.TopicID[:])
			}
			if err == nil {
				err = c.allowTopic(semantics.OpConsume, name)
			}
			for _, p := range t.Partitions {
				o := TxnOffset{Topic: name, Partition: p.Partition, Offset: p.Offset, TopicID: id}
				if p.Metadata != nil {
					o.Metadata = *p.Metadata
				}
				offs = append(offs, o)
			}
		}
		// Nothing is left to commit when every topic's id is unknown: the
		// coordinator is not asked, as Kafka does not ask it.
		if err == nil && (len(offs) > 0 || len(req.Topics) == 0) {
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
				if req.Version >= 6 && gen >= 0 && errors.Is(err, semantics.ErrUnknownMemberID) {
					if _, derr := c.b.DescribeGroup(ctx, req.Group); errors.Is(derr, semantics.ErrGroupIDNotFound) {
						err = derr
					}
				}
			}
		}
		for i, t := range req.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = txnCode(req.Version, 3, err)
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
