package server_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestKafkaMetadataTopicLookupFails checks the Metadata answer for a topic whose
// record cannot be read for a moment (the topics bucket does not answer, as right
// after a node is lost): the topic keeps its partitions, without a leader, under
// the retriable LEADER_NOT_AVAILABLE, so that clients ask again. A topic answered
// with an error and no partitions is one librdkafka marks as failed ("permanent
// error"), failing the records it holds for it with _UNKNOWN_PARTITION.
func TestKafkaMetadataTopicLookupFails(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.KafkaListen = "127.0.0.1:0"
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)
	const topic = "lookup-blip"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 3})
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	metadata := func() kmsg.MetadataResponseTopic {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Topics) != 1 {
			t.Fatalf("metadata answers %d topics, want 1", len(resp.Topics))
		}
		return resp.Topics[0]
	}
	if got := metadata(); got.ErrorCode != 0 || len(got.Partitions) != 3 {
		t.Fatalf("before the failure: error %d, %d partitions, want none and 3", got.ErrorCode, len(got.Partitions))
	}

	// The topics bucket stops answering reads: its direct gets have no responder.
	js := qxdtest.JetStream(t, n)
	setDirect := func(on bool) {
		t.Helper()
		s, err := js.Stream(ctx, "KV_"+semantics.TopicsBucket)
		if err != nil {
			t.Fatal(err)
		}
		sc := s.CachedInfo().Config
		sc.AllowDirect = on
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	setDirect(false)
	got := metadata()
	setDirect(true)
	if got.ErrorCode != semantics.ErrTopicNotReady.Code {
		t.Errorf("topic lookup failed: error code %d, want %d (LEADER_NOT_AVAILABLE, retriable)", got.ErrorCode, semantics.ErrTopicNotReady.Code)
	}
	if len(got.Partitions) != 3 {
		t.Fatalf("topic lookup failed: %d partitions, want the topic's 3", len(got.Partitions))
	}
	for _, p := range got.Partitions {
		if p.Leader != -1 || p.ErrorCode != semantics.ErrTopicNotReady.Code {
			t.Errorf("topic lookup failed: partition %d has leader %d and error %d, want -1 and %d", p.Partition, p.Leader, p.ErrorCode, semantics.ErrTopicNotReady.Code)
		}
	}
	if got := metadata(); got.ErrorCode != 0 || len(got.Partitions) != 3 {
		t.Fatalf("after the failure: error %d, %d partitions, want none and 3", got.ErrorCode, len(got.Partitions))
	}
}
