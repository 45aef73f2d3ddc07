package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeProducers lists the active producers of partitions this node leads;
// the others are NOT_LEADER_OR_FOLLOWER, as Kafka's brokers answer. Rights: any
// right on the topic.
func handleDescribeProducers(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.DescribeProducersRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
		tb, terr := c.txns()
		for _, t := range req.Topics {
			rt := kmsg.NewDescribeProducersResponseTopic()
			rt.Topic = t.Topic
			aerr := c.allowDescribeTopic(t.Topic)
			for _, p := range t.Partitions {
				rp := kmsg.NewDescribeProducersResponseTopicPartition()
				rp.Partition = p
				err := aerr
				if err == nil {
					err = terr
				}
				var prods []Producer
				if err == nil {
					prods, err = tb.Producers(ctx, t.Topic, p)
				}
				rp.ErrorCode, rp.ErrorMessage = code(err), message(err)
				for _, pr := range prods {
					ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
					ap.ProducerID, ap.ProducerEpoch, ap.LastSequence = pr.ProducerID, int32(pr.Epoch), pr.LastSequence
					ap.LastTimestamp, ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = pr.LastTimestamp, -1, pr.TxnStartOffset
					rp.ActiveProducers = append(rp.ActiveProducers, ap)
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}
