package kafka_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// A fetch at Kafka's client defaults (1 MiB a partition, 50 MiB a fetch) over
// eight partitions full of batches is answered with about the node's
// FetchMaxBytes, shared among the partitions, not 8 MiB: every partition
// moves, none past its share by more than one batch.
func TestFetchSharesNodeMaxBytes(t *testing.T) {
	n, c := startNode(t)
	const parts, calls = 8, 40
	qxdtest.CreateTopic(t, c, "shared", qxd.TopicConfig{Partitions: parts})
	ctx := ctxFor(t, 60*time.Second)
	cl := manualProducer(t, n, "shared")
	value := bytes.Repeat([]byte("v"), 1024)
	for range calls {
		var rs []*kgo.Record
		for p := range int32(parts) {
			for range 16 {
				rs = append(rs, &kgo.Record{Partition: p, Value: value})
			}
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	resp := fetchFromStart(ctx, t, cl, "shared", parts)
	total, largest := 0, 0
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 || len(rp.RecordBatches) == 0 {
				t.Errorf("partition %d: code %d, %d bytes of batches: every partition should move", rp.Partition, rp.ErrorCode, len(rp.RecordBatches))
			}
			total += len(rp.RecordBatches)
			largest = max(largest, len(rp.RecordBatches))
		}
	}
	share := kafka.DefaultFetchMaxBytes / parts
	// A partition takes batches while they fit its share and at least one: under
	// its share plus one batch (about 16 KiB here).
	if limit := share + 20<<10; largest > limit {
		t.Errorf("a partition answered %d bytes of batches, over its share of %d by more than a batch", largest, share)
	}
	if total > kafka.DefaultFetchMaxBytes+parts*(20<<10) || total < kafka.DefaultFetchMaxBytes/2 {
		t.Errorf("the answer holds %d bytes of batches, want about %d (the node's FetchMaxBytes)", total, kafka.DefaultFetchMaxBytes)
	}
}

// What the other partitions of a fetch leave of the node's FetchMaxBytes goes
// to the one with records: a fetch over eight partitions, one holding 1.5 MiB of
// batches, is answered with the client's 1 MiB of that partition, as a Kafka
// broker answers, not with its 256 KiB share.
func TestFetchGivesLeftShareToPartitionWithRecords(t *testing.T) {
	n, c := startNode(t)
	const parts = 8
	qxdtest.CreateTopic(t, c, "skewed", qxd.TopicConfig{Partitions: parts})
	ctx := ctxFor(t, 60*time.Second)
	cl := manualProducer(t, n, "skewed")
	value := bytes.Repeat([]byte("v"), 1024)
	for range 24 {
		rs := make([]*kgo.Record, 64)
		for j := range rs {
			rs[j] = &kgo.Record{Partition: 3, Value: value}
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	resp := fetchFromStart(ctx, t, cl, "skewed", parts)
	var got []byte
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				t.Errorf("partition %d: code %d", rp.Partition, rp.ErrorCode)
			}
			if rp.Partition == 3 {
				got = rp.RecordBatches
			} else if len(rp.RecordBatches) != 0 {
				t.Errorf("partition %d: %d bytes of batches, it holds none", rp.Partition, len(rp.RecordBatches))
			}
		}
	}
	// Up to 1 MiB, less at most one 64 KiB batch that would pass it.
	if len(got) < 1<<20-80<<10 || len(got) > 1<<20 {
		t.Fatalf("partition 3 answered %d bytes of batches, want the client's 1 MiB less at most a batch", len(got))
	}
	// The batches are whole and follow one another from offset 0.
	next := int64(0)
	for b := got; len(b) > 0; {
		h, err := semantics.PeekBatchHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if h.BaseOffset != next {
			t.Fatalf("batch at offset %d where %d was next", h.BaseOffset, next)
		}
		next = h.LastOffset() + 1
		b = b[12+int(h.Length):]
	}
}

// manualProducer is a franz-go client producing uncompressed batches to topic,
// each record to the partition it names, lingering 50 ms so that a partition's
// records of one call make one batch.
func manualProducer(t *testing.T, n *server.Node, topic string) *kgo.Client {
	t.Helper()
	return kafkaClient(t, n, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(50*time.Millisecond))
}

// fetchFromStart sends one sessionless fetch of partitions 0 to parts-1 of
// topic from offset 0, at Kafka's client defaults (50 MiB a fetch, 1 MiB a
// partition), naming the topic by name and by id, and returns its answer.
func fetchFromStart(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, parts int32) *kmsg.FetchResponse {
	t.Helper()
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mr, err := cl.Request(ctx, mreq)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxBytes, req.MinBytes, req.SessionEpoch = -1, 50<<20, 1, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, mr.(*kmsg.MetadataResponse).Topics[0].TopicID
	for p := range parts {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.LogStartOffset = p, 0, 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	kr, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return kr.(*kmsg.FetchResponse)
}
