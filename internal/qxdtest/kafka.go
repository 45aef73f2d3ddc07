package qxdtest

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ProduceRequest is a Kafka Produce request of the given version and acks that
// appends batch, a RecordBatch, to partition 0 of topic, its timeout timeout.
func ProduceRequest(version, acks int16, timeout time.Duration, topic string, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = version, acks, int32(timeout.Milliseconds())
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}
