package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/server"
)

// nodeOfBroker returns the node whose Kafka broker id is id.
func nodeOfBroker(t *testing.T, ctx context.Context, nodes []*server.Node, id int32) *server.Node {
	t.Helper()
	// nodes[0] names a broker once it knows its address; one it has not learnt
	// yet is asked for it, and on a loaded machine the answer can come after the
	// Metadata answer has gone without it: ask again.
	adm := kadm.NewClient(kafkaClient(t, nodes[0]))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		md, err := adm.BrokerMetadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range md.Brokers {
			if b.NodeID != id {
				continue
			}
			for _, n := range nodes {
				if n.KafkaAddr() == fmt.Sprintf("%s:%d", b.Host, b.Port) {
					return n
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node is Kafka broker %d (brokers %v)", id, md.Brokers)
		}
	}
}

// fetchFrom sends broker n one Fetch of partition 0 of topic from offset, and
// returns the answer's partition.
func fetchFrom(t *testing.T, ctx context.Context, n *server.Node, topic string, offset int64) kmsg.FetchResponseTopicPartition {
	t.Helper()
	cl := kafkaClient(t, n)
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 12, 0, 1, 50<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, topicID(t, ctx, cl, topic)
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = 0, offset, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	var self int32 = -1
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range md.Brokers {
		if fmt.Sprintf("%s:%d", b.Host, b.Port) == n.KafkaAddr() {
			self = b.NodeID
		}
	}
	resp, err := cl.Broker(int(self)).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
}

// fetchReads returns node n's counts of batches its Kafka listener read.
func fetchReads(t *testing.T, n *server.Node) server.KafkaFetchReads {
	t.Helper()
	r, ok := n.KafkaFetchReads()
	if !ok {
		t.Fatal("the node has no Kafka listener")
	}
	return r
}

// The leader of a three-replica partition answers fetches from its own store,
// in process, with the batches as stored, before and after a leader change: the
// new leader reads its own store (what it applied, all of it committed), and
// the former one, now a follower, answers through NATS. Serial: it counts the
// shared nodes' fetch reads, which another test's fetches would add to.
func TestFetchReadsLeaderStoreAcrossLeaderChange(t *testing.T) {
	nodes := sharedKafkaCluster(t)
	c := qxdtest.Connect(t, nodes[0])
	led := clusterTopic(t, c, "led", qxd.TopicConfig{Partitions: 1, Replicas: 3})
	ctx := ctxFor(t, 120*time.Second)

	leader1, e1 := partitionEpoch(t, ctx, nodes, led, 0)
	stored := produceBatches(t, ctx, nodes[0], led, 1, 4)[0]
	first := nodeOfBroker(t, ctx, nodes, leader1)
	before := fetchReads(t, first)
	rp := fetchFrom(t, ctx, first, led, 0)
	if want := bytes.Join(stored, nil); rp.ErrorCode != 0 || rp.HighWatermark != 12 || !bytes.Equal(rp.RecordBatches, want) {
		t.Fatalf("fetch from the leader: code %d, high watermark %d, %d bytes; want 0, 12 and the %d bytes stored", rp.ErrorCode, rp.HighWatermark, len(rp.RecordBatches), len(want))
	}
	if after := fetchReads(t, first); after.Store < before.Store+4 || after.NATS != before.NATS {
		t.Fatalf("the leader read %d batches from its store and %d through NATS for the fetch; want 4 or more from its store, none through NATS",
			after.Store-before.Store, after.NATS-before.NATS)
	}

	leader2, _ := moveLeader(t, ctx, nodes, led, e1)
	second := nodeOfBroker(t, ctx, nodes, leader2)
	if second == first {
		t.Fatalf("the leadership stayed on broker %d", leader1)
	}
	pcl := kafkaClient(t, nodes[0], kgo.DefaultProduceTopic(led))
	for i := range 2 {
		rs := []*kgo.Record{{Value: fmt.Appendf(nil, "after-%d-a", i)}, {Value: fmt.Appendf(nil, "after-%d-b", i)}, {Value: fmt.Appendf(nil, "after-%d-c", i)}}
		if err := pcl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	fr, err := nodes[0].Fetcher().Fetch(ctx, server.FetchRequest{Topic: led, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	more := fr.Batches // every batch stored now
	if len(more) != 6 || !bytes.Equal(bytes.Join(more[:4], nil), bytes.Join(stored, nil)) {
		t.Fatalf("%d batches stored after the leader change, want the 4 from before and 2 more", len(more))
	}
	before = fetchReads(t, second)
	rp = fetchFrom(t, ctx, second, led, 0)
	if want := bytes.Join(more, nil); rp.ErrorCode != 0 || rp.HighWatermark != 18 || !bytes.Equal(rp.RecordBatches, want) {
		t.Fatalf("fetch from the new leader: code %d, high watermark %d, %d bytes; want 0, 18 and the %d bytes stored", rp.ErrorCode, rp.HighWatermark, len(rp.RecordBatches), len(want))
	}
	if after := fetchReads(t, second); after.Store < before.Store+6 || after.NATS != before.NATS {
		t.Fatalf("the new leader read %d batches from its store and %d through NATS for the fetch; want 6 or more from its store, none through NATS",
			after.Store-before.Store, after.NATS-before.NATS)
	}
	// The former leader reads through NATS now.
	before = fetchReads(t, first)
	rp = fetchFrom(t, ctx, first, led, 12)
	if want := bytes.Join(more[4:], nil); rp.ErrorCode != 0 || !bytes.Equal(rp.RecordBatches, want) {
		t.Fatalf("fetch from the former leader at offset 12: code %d, %d bytes; want 0 and the last two batches' %d bytes", rp.ErrorCode, len(rp.RecordBatches), len(want))
	}
	if after := fetchReads(t, first); after.Store != before.Store || after.NATS == before.NATS {
		t.Fatalf("the former leader read %d batches from its store and %d through NATS; want none from its store", after.Store-before.Store, after.NATS-before.NATS)
	}
}

// A partition trimmed in the middle of a batch (DeleteRecords) answers from the
// leader's store with the log start the trim set, not the first stored batch's
// base: OFFSET_OUT_OF_RANGE below it, and the batch holding it, whole, at it.
func TestFetchFromStoreAfterTrimMidBatch(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "midtrim", qxd.TopicConfig{Partitions: 1})
	ctx := ctxFor(t, 60*time.Second)
	stored := produceBatches(t, ctx, n, "midtrim", 1, 4)[0]
	cl := kafkaClient(t, n)
	dr, err := kadm.NewClient(cl).DeleteRecords(ctx, kadm.Offsets{"midtrim": {0: {Topic: "midtrim", Partition: 0, At: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := dr.Error(); err != nil {
		t.Fatal(err)
	}
	below := fetchFrom(t, ctx, n, "midtrim", 3)
	if below.ErrorCode != kerr.OffsetOutOfRange.Code || below.LogStartOffset != 4 {
		t.Fatalf("fetch at offset 3: code %d, log start %d; want OFFSET_OUT_OF_RANGE, 4", below.ErrorCode, below.LogStartOffset)
	}
	at := fetchFrom(t, ctx, n, "midtrim", 4)
	if want := bytes.Join(stored[1:], nil); at.ErrorCode != 0 || at.LogStartOffset != 4 || at.HighWatermark != 12 || !bytes.Equal(at.RecordBatches, want) {
		t.Fatalf("fetch at offset 4: code %d, log start %d, high watermark %d, %d bytes; want 0, 4, 12 and the last three batches' %d bytes",
			at.ErrorCode, at.LogStartOffset, at.HighWatermark, len(at.RecordBatches), len(want))
	}
	readsFromStore(t, n)
}
