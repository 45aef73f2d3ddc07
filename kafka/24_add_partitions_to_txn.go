package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/semantics"
)

// AddPartitionsToTxn adds partitions to a producer's transaction (v0–3; v4+ is
// Kafka's broker-to-coordinator batch form). A refusal is answered for every
// partition, as the coordinator adds all or none.
func handleAddPartitionsToTxn(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.AddPartitionsToTxnRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
		var parts []semantics.TopicPartition
		var err error
		for _, t := range req.Topics {
			if err == nil {
				err = c.allowTopic(semantics.OpProduce, t.Topic)
			}
			for _, p := range t.Partitions {
				parts = append(parts, semantics.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
		if err == nil {
			var tb TxnBackend
			if tb, err = c.txns(); err == nil {
				err = tb.AddPartitionsToTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, parts)
			}
		}
		for _, t := range req.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition = p
				rp.ErrorCode = txnCode(req.Version, 2, err)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}

// txnCode is err's code for a transaction API of version v: PRODUCER_FENCED is
// INVALID_PRODUCER_EPOCH below fencedFrom, the API's first version whose clients
// know it (Kafka's KIP-588).
func txnCode(v, fencedFrom int16, err error) int16 {
	cd := code(err)
	if cd == semantics.ErrProducerFenced.Code && v < fencedFrom {
		return semantics.ErrInvalidProducerEpoch.Code
	}
	return cd
}
