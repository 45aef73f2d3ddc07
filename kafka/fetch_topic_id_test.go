package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// topicID is topic's id as Metadata gives it: franz-go sends Fetch v13, which
// names topics by id, to a listener that takes it.
func topicID(t *testing.T, ctx context.Context, cl *kgo.Client, topic string) [16]byte {
	t.Helper()
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return md.Topics[topic].ID
}

// TestKafkaFetchByTopicID: Fetch v13 names topics by id: the topic's records come
// back under its id, and an unknown id is UNKNOWN_TOPIC_ID.
func TestKafkaFetchByTopicID(t *testing.T) {
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "by-id", qxd.TopicConfig{Partitions: 1})
	ctx := ctxFor(t, 30*time.Second)
	cl := kafkaClient(t, n, kgo.DefaultProduceTopic("by-id"))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	id := topicID(t, ctx, cl, "by-id")
	for _, tc := range []struct {
		name string
		id   [16]byte
		code int16
	}{{"known id", id, 0}, {"unknown id", [16]byte{1, 2, 3}, kerr.UnknownTopicID.Code}} {
		t.Run(tc.name, func(t *testing.T) {
			req := kmsg.NewPtrFetchRequest()
			req.Version, req.MaxBytes = 13, 1<<20
			ft := kmsg.NewFetchRequestTopic()
			ft.TopicID = tc.id
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.PartitionMaxBytes = 1 << 20
			ft.Partitions = append(ft.Partitions, fp)
			req.Topics = append(req.Topics, ft)
			resp, err := cl.Request(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			fr := resp.(*kmsg.FetchResponse)
			if len(fr.Topics) != 1 || fr.Topics[0].TopicID != tc.id || len(fr.Topics[0].Partitions) != 1 {
				t.Fatalf("fetch by id answered %+v", fr.Topics)
			}
			p := fr.Topics[0].Partitions[0]
			if p.ErrorCode != tc.code {
				t.Fatalf("code %d, want %d", p.ErrorCode, tc.code)
			}
			if tc.code == 0 && (p.HighWatermark != 1 || len(p.RecordBatches) == 0) {
				t.Fatalf("high watermark %d, %d bytes of batches; want 1 and the record", p.HighWatermark, len(p.RecordBatches))
			}
		})
	}
}
