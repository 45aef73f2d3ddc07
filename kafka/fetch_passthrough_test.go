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

// produceBatches stores batches records batches of three records in each of
// partitions of topic, one batch a produce, and returns the stored batches of
// every partition as the node's fetch service reads them.
func produceBatches(t *testing.T, ctx context.Context, n *server.Node, topic string, partitions int32, batches int) [][][]byte {
	t.Helper()
	cl := kafkaClient(t, n, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range batches {
		for p := range partitions {
			var rs []*kgo.Record
			for j := range 3 {
				rs = append(rs, &kgo.Record{Partition: p, Key: []byte(fmt.Sprintf("k%d", j)), Value: bytes.Repeat([]byte{byte('a' + i)}, 100+j)})
			}
			if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	stored := make([][][]byte, partitions)
	for p := range partitions {
		r, err := n.Fetcher().Fetch(ctx, server.FetchRequest{Topic: topic, Partition: p, MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Batches) != batches {
			t.Fatalf("partition %d: %d batches stored, want %d", p, len(r.Batches), batches)
		}
		stored[p] = r.Batches
	}
	return stored
}

// rawFetch sends one Fetch of version v for partitions 0 to len(offsets)-1 of
// topic, from offsets, and returns the answer's partitions.
func rawFetch(t *testing.T, ctx context.Context, cl *kgo.Client, v int16, topic string, id [16]byte, offsets []int64, partMax, maxBytes int32) []kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = v, 0, 1, maxBytes
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	for p, o := range offsets {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = int32(p), o, partMax
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	fr := resp.(*kmsg.FetchResponse)
	if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != len(offsets) {
		t.Fatalf("fetch v%d: answer of %d topics, want 1 with %d partitions", v, len(fr.Topics), len(offsets))
	}
	return fr.Topics[0].Partitions
}

// readsFromStore checks that node n's Kafka listener read the batches it
// answered from its own store, in process, and none through NATS since it
// started (it leads every partition it serves).
func readsFromStore(t *testing.T, n *server.Node) {
	t.Helper()
	r, ok := n.KafkaFetchReads()
	if !ok || r.Store == 0 || r.NATS != 0 {
		t.Fatalf("the Kafka listener read %d batches from its store and %d through NATS (listener %t); want them all from its store", r.Store, r.NATS, ok)
	}
}

// A Kafka fetch answers each partition's stored batches byte for byte as they
// are stored, several of them in one records field, at every version from the
// oldest served to the first naming topics by id; the limits hold as Kafka's
// brokers apply them (KIP-74): the first batch of the first partition answering
// any whatever its size, no batch past a partition's or the fetch's limit after
// it.
func TestFetchAnswersStoredBatches(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "stored", qxd.TopicConfig{Partitions: 2})
	ctx := ctxFor(t, 60*time.Second)
	stored := produceBatches(t, ctx, n, "stored", 2, 4)
	cl := kafkaClient(t, n)
	id := topicID(t, ctx, cl, "stored")
	for _, v := range []int16{4, 11, 12, 13} {
		parts := rawFetch(t, ctx, cl, v, "stored", id, []int64{0, 0}, 1<<20, 50<<20)
		for p, rp := range parts {
			if rp.ErrorCode != 0 || rp.HighWatermark != 12 || rp.LogStartOffset != 0 {
				t.Fatalf("v%d partition %d: code %d, high watermark %d, log start %d; want 0, 12, 0", v, p, rp.ErrorCode, rp.HighWatermark, rp.LogStartOffset)
			}
			if want := bytes.Join(stored[p], nil); !bytes.Equal(rp.RecordBatches, want) {
				t.Fatalf("v%d partition %d: %d bytes of records, not the %d bytes stored", v, p, len(rp.RecordBatches), len(want))
			}
		}
		// From the second batch on.
		second := rawFetch(t, ctx, cl, v, "stored", id, []int64{3, 3}, 1<<20, 50<<20)
		for p, rp := range second {
			if want := bytes.Join(stored[p][1:], nil); !bytes.Equal(rp.RecordBatches, want) {
				t.Fatalf("v%d partition %d from offset 3: %d bytes, not the %d bytes stored from it", v, p, len(rp.RecordBatches), len(want))
			}
		}
	}
	readsFromStore(t, n)
	one := int32(len(stored[0][0]))
	cases := []struct {
		name              string
		partMax, maxBytes int32
		want              [2][]byte
	}{
		{"a partition limit below every batch", 1, 50 << 20, [2][]byte{stored[0][0], nil}},
		{"a fetch limit below every batch", 1 << 20, 1, [2][]byte{stored[0][0], nil}},
		{"a partition limit of two batches", 2 * one, 50 << 20,
			[2][]byte{bytes.Join(stored[0][:2], nil), bytes.Join(stored[1][:2], nil)}},
		{"a fetch limit of three batches", 1 << 20, 3 * one,
			[2][]byte{bytes.Join(stored[0][:3], nil), nil}},
		{"a fetch limit of five batches", 1 << 20, 5 * one,
			[2][]byte{bytes.Join(stored[0], nil), stored[1][0]}},
	}
	for _, tc := range cases {
		parts := rawFetch(t, ctx, cl, 12, "stored", id, []int64{0, 0}, tc.partMax, tc.maxBytes)
		for p, rp := range parts {
			if !bytes.Equal(rp.RecordBatches, tc.want[p]) {
				t.Errorf("%s: partition %d answered %d bytes, want %d", tc.name, p, len(rp.RecordBatches), len(tc.want[p]))
			}
		}
	}
}

// A consumer reading a partition fetch after fetch has every stored batch loaded
// from the leader's store once: a read stops once past its limit, so it loads a
// batch it does not answer, and that batch starts the read ahead for the next
// fetch rather than being loaded again.
func TestFetchLoadsEachBatchOnce(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "once", qxd.TopicConfig{Partitions: 1})
	ctx := ctxFor(t, 60*time.Second)
	stored := produceBatches(t, ctx, n, "once", 1, 9)[0]
	cl := kafkaClient(t, n)
	id := topicID(t, ctx, cl, "once")
	// The first fetch of a partition also loads the stream's first and last
	// batches: fetch the last batch alone first, which starts no read ahead.
	if rp := rawFetch(t, ctx, cl, 12, "once", id, []int64{24}, 1<<20, 50<<20)[0]; !bytes.Equal(rp.RecordBatches, stored[8]) {
		t.Fatalf("from offset 24: %d bytes, want the last batch's %d", len(rp.RecordBatches), len(stored[8]))
	}
	before := fetchReads(t, n)
	// Two and a half batches a fetch: each read loads a third batch and stops.
	limit := int32(len(stored[0])) * 5 / 2
	var got []byte
	fetches := 0
	for offset := int64(0); offset < 27; fetches++ {
		rp := rawFetch(t, ctx, cl, 12, "once", id, []int64{offset}, limit, 50<<20)[0]
		if rp.ErrorCode != 0 || len(rp.RecordBatches) == 0 {
			t.Fatalf("fetch from offset %d: code %d, %d bytes", offset, rp.ErrorCode, len(rp.RecordBatches))
		}
		got = append(got, rp.RecordBatches...)
		offset += 3 * int64(len(rp.RecordBatches)/len(stored[0]))
	}
	if want := bytes.Join(stored, nil); !bytes.Equal(got, want) {
		t.Fatalf("%d fetches answered %d bytes, not the %d bytes stored", fetches, len(got), len(want))
	}
	after := fetchReads(t, n)
	if loaded := after.Store - before.Store; loaded != int64(len(stored)) || after.NATS != before.NATS {
		t.Errorf("%d fetches loaded %d batches from the store and %d through NATS for the %d stored; want each loaded once, from the store",
			fetches, loaded, after.NATS-before.NATS, len(stored))
	}
}

// ListOffsets reads a partition's offsets as a fetch does, from the leader's
// store, and the stream's first and last batches it reads for them serve the
// consumer's first fetch, which then loads only the batches it answers.
func TestListOffsetsReadsAsFetch(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "listed", qxd.TopicConfig{Partitions: 1})
	ctx := ctxFor(t, 60*time.Second)
	stored := produceBatches(t, ctx, n, "listed", 1, 4)[0]
	cl := kafkaClient(t, n)
	id := topicID(t, ctx, cl, "listed")
	before := fetchReads(t, n)
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, "listed")
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, "listed")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := starts.Lookup("listed", 0)
	e, _ := ends.Lookup("listed", 0)
	if s.Err != nil || e.Err != nil || s.Offset != 0 || e.Offset != 12 {
		t.Fatalf("ListOffsets: start %d (%v), end %d (%v); want 0 and 12", s.Offset, s.Err, e.Offset, e.Err)
	}
	listed := fetchReads(t, n)
	if listed.NATS != before.NATS || listed.Store == before.Store {
		t.Errorf("ListOffsets read %d batches from the store and %d through NATS; want the stream's ends from the store",
			listed.Store-before.Store, listed.NATS-before.NATS)
	}
	if rp := rawFetch(t, ctx, cl, 12, "listed", id, []int64{0}, 1<<20, 50<<20)[0]; !bytes.Equal(rp.RecordBatches, bytes.Join(stored, nil)) {
		t.Fatalf("fetch from 0: %d bytes, want the %d stored", len(rp.RecordBatches), len(bytes.Join(stored, nil)))
	}
	if after := fetchReads(t, n); after.Store-listed.Store != int64(len(stored)) || after.NATS != listed.NATS {
		t.Errorf("the first fetch after ListOffsets loaded %d batches from the store and %d through NATS; want the %d it answered, from the store",
			after.Store-listed.Store, after.NATS-listed.NATS, len(stored))
	}
}

// A partition read ahead for a consumer's next fetch and trimmed in between is
// answered as trimmed: OFFSET_OUT_OF_RANGE below the new log start, the batches
// from it at it.
func TestFetchReadAheadAfterTrim(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "ahead", qxd.TopicConfig{Partitions: 1})
	ctx := ctxFor(t, 60*time.Second)
	stored := produceBatches(t, ctx, n, "ahead", 1, 4)[0]
	cl := kafkaClient(t, n)
	id := topicID(t, ctx, cl, "ahead")
	one := int32(len(stored[0]))
	first := rawFetch(t, ctx, cl, 12, "ahead", id, []int64{0}, one, 50<<20)[0]
	if !bytes.Equal(first.RecordBatches, stored[0]) {
		t.Fatalf("first fetch: %d bytes, want the first batch's %d", len(first.RecordBatches), len(stored[0]))
	}
	// The node now reads offsets 3 to 5 ahead; the partition loses them.
	dr, err := kadm.NewClient(cl).DeleteRecords(ctx, kadm.Offsets{"ahead": {0: {Topic: "ahead", Partition: 0, At: 6}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := dr.Error(); err != nil {
		t.Fatal(err)
	}
	next := rawFetch(t, ctx, cl, 12, "ahead", id, []int64{3}, one, 50<<20)[0]
	if next.ErrorCode != kerr.OffsetOutOfRange.Code || next.LogStartOffset != 6 || len(next.RecordBatches) != 0 {
		t.Fatalf("fetch below the new log start: code %d, log start %d, %d bytes; want OFFSET_OUT_OF_RANGE, 6, none",
			next.ErrorCode, next.LogStartOffset, len(next.RecordBatches))
	}
	at := rawFetch(t, ctx, cl, 12, "ahead", id, []int64{6}, 1<<20, 50<<20)[0]
	if want := bytes.Join(stored[2:], nil); at.ErrorCode != 0 || !bytes.Equal(at.RecordBatches, want) {
		t.Fatalf("fetch at the new log start: code %d, %d bytes; want the last two batches' %d", at.ErrorCode, len(at.RecordBatches), len(want))
	}
	readsFromStore(t, n)
}

// A partition read ahead for a consumer's next fetch, whose topic is deleted and
// made again in between, is answered from the new topic: the batches read ahead
// belong to the old one and are never served under its name.
func TestFetchReadAheadAfterTopicRemade(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "remade-ahead", qxd.TopicConfig{Partitions: 1})
	ctx := ctxFor(t, 60*time.Second)
	old := produceBatches(t, ctx, n, "remade-ahead", 1, 4)[0]
	cl := kafkaClient(t, n)
	one := int32(len(old[0]))
	oldID := topicID(t, ctx, cl, "remade-ahead")
	first := rawFetch(t, ctx, cl, 13, "remade-ahead", oldID, []int64{0}, one, 50<<20)[0]
	if !bytes.Equal(first.RecordBatches, old[0]) {
		t.Fatalf("first fetch: code %d, %d bytes, want the first batch's %d", first.ErrorCode, len(first.RecordBatches), len(old[0]))
	}
	// The node now reads offsets 3 to 5 of the old topic ahead; the topic goes,
	// and a longer one takes its place (so that the old batches' end is within
	// the new topic's).
	if err := c.Admin().DeleteTopic(ctx, "remade-ahead"); err != nil {
		t.Fatal(err)
	}
	qxdtest.CreateTopic(t, c, "remade-ahead", qxd.TopicConfig{Partitions: 1})
	remade := produceBatches(t, ctx, n, "remade-ahead", 1, 5)[0]
	// The client learns the new topic's id, as a consumer's metadata refresh does
	// (a new client: this one keeps the metadata it read a moment ago).
	newID := topicID(t, ctx, kafkaClient(t, n), "remade-ahead")
	if newID == oldID {
		t.Fatalf("the topic made again has the old one's id %x", oldID)
	}
	next := rawFetch(t, ctx, cl, 13, "remade-ahead", newID, []int64{3}, one, 50<<20)[0]
	if next.ErrorCode != 0 || next.HighWatermark != 15 || !bytes.Equal(next.RecordBatches, remade[1]) {
		t.Fatalf("fetch at offset 3 of the remade topic: code %d, high watermark %d, %d bytes (the old topic's batch: %v); want 0, 15 and the new second batch's %d bytes",
			next.ErrorCode, next.HighWatermark, len(next.RecordBatches), bytes.Equal(next.RecordBatches, old[1]), len(remade[1]))
	}
	readsFromStore(t, n)
}
