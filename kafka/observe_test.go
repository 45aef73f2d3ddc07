package kafka_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/kafka"
)

func TestFirstErrorCode(t *testing.T) {
	t.Parallel()
	produce := func(codes ...int16) kmsg.Response {
		r := kmsg.NewPtrProduceResponse()
		rt := kmsg.NewProduceResponseTopic()
		for _, c := range codes {
			p := kmsg.NewProduceResponseTopicPartition()
			p.ErrorCode = c
			rt.Partitions = append(rt.Partitions, p)
		}
		r.Topics = append(r.Topics, rt)
		return r
	}
	versions := kmsg.NewPtrApiVersionsResponse()
	versions.ErrorCode = 35
	versions.ApiKeys = append(versions.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: 0, MaxVersion: 9})
	fetch := kmsg.NewPtrFetchResponse()
	ft := kmsg.NewFetchResponseTopic()
	fp := kmsg.NewFetchResponseTopicPartition()
	fp.RecordBatches = []byte{1, 2, 3}
	fp.ErrorCode = 1
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	for _, c := range []struct {
		name string
		resp kmsg.Response
		want int16
	}{
		{"none", produce(0, 0), 0},
		{"the first of a partial failure", produce(0, 3, 6), 3},
		{"top level", versions, 35},
		{"a fetch partition", fetch, 1},
		{"empty", kmsg.NewPtrMetadataResponse(), 0},
	} {
		if got := kafka.FirstErrorCode(c.resp); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
