package server_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestKafkaMetadataTopicLookupFails checks the Metadata answer for a topic whose
// record cannot be read for a moment (the topics bucket does not answer, as while
// the node that led it is lost, cut off or paused and the others have not elected
// another): the node knows the topic from the bucket's watch, and each partition's
// leader from the partition's own RAFT group, so every partition keeps its leader
// and the topic answers no error. It used to answer every partition without a
// leader (LEADER_NOT_AVAILABLE): clients then held the records of every partition,
// those led by healthy nodes too, until they read the metadata again (franz-go up
// to 5 s later).
func TestKafkaMetadataTopicLookupFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		nodes int
	}{{"single node", 1}, {"three nodes", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var nodes []*server.Node
			if tc.nodes == 1 {
				cfg := qxdtest.NodeConfig(t, t.TempDir())
				cfg.KafkaListen = "127.0.0.1:0"
				nodes = []*server.Node{qxdtest.StartNodeWith(t, cfg)}
			} else {
				cfgs := qxdtest.ClusterConfigs(t, tc.nodes)
				for i := range cfgs {
					cfgs[i].KafkaListen = "127.0.0.1:0"
				}
				nodes = qxdtest.StartCluster(t, cfgs)
			}
			topicLookupFails(t, nodes)
		})
	}
}

func topicLookupFails(t *testing.T, nodes []*server.Node) {
	n := nodes[0]
	c := qxdtest.ConnectCluster(t, nodes)
	ctx := qxdtest.Context(t, time.Minute)
	const topic = "lookup-blip"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 3, Replicas: len(nodes)})
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
		// Asked of n, always: the answer is n's view.
		r, err := cl.SeedBrokers()[0].RetriableRequest(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		resp := r.(*kmsg.MetadataResponse)
		if len(resp.Topics) != 1 {
			t.Fatalf("metadata answers %d topics, want 1", len(resp.Topics))
		}
		return resp.Topics[0]
	}
	// Every partition named with its leader (and the writers of a cluster
	// started).
	var before kmsg.MetadataResponseTopic
	for wait := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		before = metadata()
		ok := before.ErrorCode == 0 && len(before.Partitions) == 3
		for _, p := range before.Partitions {
			ok = ok && p.Leader >= 0 && p.ErrorCode == 0
		}
		if ok {
			break
		}
		if time.Since(wait) > 30*time.Second {
			t.Fatalf("before the failure: error %d, partitions %+v, want none and 3 with leaders", before.ErrorCode, before.Partitions)
		}
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
	if got.ErrorCode != 0 {
		t.Errorf("topic lookup failed: error code %d, want none (the node knows the topic)", got.ErrorCode)
	}
	if got.TopicID != before.TopicID {
		t.Errorf("topic lookup failed: topic id %x, want %x", got.TopicID, before.TopicID)
	}
	if len(got.Partitions) != 3 {
		t.Fatalf("topic lookup failed: %d partitions, want the topic's 3", len(got.Partitions))
	}
	for i, p := range got.Partitions {
		want := before.Partitions[i]
		if p.Partition != want.Partition || p.Leader != want.Leader || p.LeaderEpoch != want.LeaderEpoch || p.ErrorCode != 0 {
			t.Errorf("topic lookup failed: partition %d has leader %d (epoch %d) and error %d, want leader %d (epoch %d) and none",
				p.Partition, p.Leader, p.LeaderEpoch, p.ErrorCode, want.Leader, want.LeaderEpoch)
		}
	}
	if got := metadata(); got.ErrorCode != 0 || len(got.Partitions) != 3 {
		t.Fatalf("after the failure: error %d, %d partitions, want none and 3", got.ErrorCode, len(got.Partitions))
	}
}
