package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// batch builds a RecordBatch v2 of n records of size bytes each.
func batch(t *testing.T, n, size int) []byte {
	t.Helper()
	var bb semantics.BatchBuilder
	for i := range n {
		bb.Append(&semantics.Record{Key: fmt.Appendf(nil, "k%d", i), Value: bytes.Repeat([]byte{'x'}, size)})
	}
	b, err := bb.Build(nil, semantics.NoProducer, semantics.CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// byName caps a franz-go client's Produce at v12, the last version that names
// topics, for a client that sends produceReq's requests (franz-go sends a raw
// request at the newest version both sides have, and v13 carries only ids).
func byName() kgo.Opt {
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(kmsg.Produce.Int16(), 12)
	return kgo.MaxVersions(vs)
}

func produceReq(acks int16, parts map[string]map[int32][]byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, acks, 10000
	var topics []string
	for t := range parts {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, topic := range topics {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		for p := int32(0); p < 10; p++ {
			if b, ok := parts[topic][p]; ok {
				rp := kmsg.NewProduceRequestTopicPartition()
				rp.Partition, rp.Records = p, b
				rt.Partitions = append(rt.Partitions, rp)
			}
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// Each partition of a produce request gets its own answer: stored, unknown topic or
// partition, too large, old message format.
func TestProducePartitionCodes(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "small", qxd.TopicConfig{Partitions: 2, MaxMessageBytes: 1024})
	ctx := ctxFor(t, 30*time.Second)
	v1 := batch(t, 1, 10)
	v1[16] = 1 // magic 1: the format before Kafka 0.11
	req := produceReq(-1, map[string]map[int32][]byte{
		"small":   {0: batch(t, 3, 10), 1: batch(t, 1, 2000), 5: batch(t, 1, 10)},
		"missing": {0: batch(t, 1, 10)},
		"old":     {0: v1},
	})
	cl := kafkaClient(t, n, byName())
	kresp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int16{}
	for _, rt := range kresp.(*kmsg.ProduceResponse).Topics {
		for _, rp := range rt.Partitions {
			got[fmt.Sprintf("%s/%d", rt.Topic, rp.Partition)] = rp.ErrorCode
			if rt.Topic == "small" && rp.Partition == 0 && (rp.ErrorCode != 0 || rp.BaseOffset != 0) {
				t.Errorf("small/0: code %d base offset %d, want 0 and 0", rp.ErrorCode, rp.BaseOffset)
			}
		}
	}
	want := map[string]int16{
		"small/0":   0,
		"small/1":   kerr.MessageTooLarge.Code,
		"small/5":   kerr.UnknownTopicOrPartition.Code,
		"missing/0": kerr.UnknownTopicOrPartition.Code,
		"old/0":     kerr.UnsupportedForMessageFormat.Code,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: code %d (%v), want %d (%v)", k, got[k], kerr.ErrorForCode(got[k]), w, kerr.ErrorForCode(w))
		}
	}
	// Only the good batch is stored, at offsets 0-2.
	recs := pollSDK(t, c, "small", 2, 3)
	if len(recs) != 3 || recs[2].Offset != 2 {
		t.Fatalf("stored %v, want 3 records at offsets 0-2", recs)
	}
}

// acks=0 gets no answer, and what it sent is stored; the connection carries on.
func TestProduceAcksZero(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "fire", qxd.TopicConfig{})
	cl := kafkaClient(t, n, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite(), kgo.DefaultProduceTopic("fire"))
	ctx := ctxFor(t, 30*time.Second)
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	recs := pollSDK(t, c, "fire", 1, 20)
	for i, r := range recs {
		if want := fmt.Sprintf("v%d", i); string(r.Value) != want || r.Offset != int64(i) {
			t.Fatalf("record %d: %s at %d, want %s at %d", i, r.Value, r.Offset, want, i)
		}
	}
}

// A fetch at the high watermark waits for an append and returns as soon as one
// is stored, not at the end of its max wait.
func TestFetchLongPoll(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "poll", qxd.TopicConfig{})
	cl := kafkaClient(t, n)
	ctx := ctxFor(t, 30*time.Second)
	id := topicID(t, ctx, cl, "poll")
	fetch := func(offset int64, wait int32) (*kmsg.FetchResponseTopicPartition, time.Duration) {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 12, wait, 1, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "poll", id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = 0, offset, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		start := time.Now()
		resp, err := cl.Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return &resp.(*kmsg.FetchResponse).Topics[0].Partitions[0], time.Since(start)
	}
	// Nothing stored: the fetch waits its max wait.
	if p, d := fetch(0, 300); p.ErrorCode != 0 || len(p.RecordBatches) != 0 || d < 250*time.Millisecond {
		t.Fatalf("empty fetch: code %d, %d bytes after %v; want nothing after 300ms", p.ErrorCode, len(p.RecordBatches), d)
	}
	go func() {
		time.Sleep(500 * time.Millisecond)
		kp := kafkaClient(t, n, kgo.DefaultProduceTopic("poll"))
		_ = kp.ProduceSync(context.Background(), &kgo.Record{Value: []byte("late")})
	}()
	p, d := fetch(0, 20000)
	if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		t.Fatalf("long poll: code %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
	if d > 10*time.Second {
		t.Fatalf("long poll answered after %v: not woken by the append", d)
	}
	if p.HighWatermark != 1 || p.LogStartOffset != 0 {
		t.Fatalf("high watermark %d log start %d, want 1 and 0", p.HighWatermark, p.LogStartOffset)
	}
	if p, _ := fetch(5, 0); p.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch past the end: code %d, want OFFSET_OUT_OF_RANGE", p.ErrorCode)
	}
}

// ListOffsets answers the log start, the high watermark and offsets by time, as
// the SDK sees them.
func TestListOffsets(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "times", qxd.TopicConfig{})
	ctx := ctxFor(t, 30*time.Second)
	cl := kafkaClient(t, n, kgo.DefaultProduceTopic("times"))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 10 {
		r := &kgo.Record{Value: []byte("v"), Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	start, err := adm.ListStartOffsets(ctx, "times")
	if err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(ctx, "times")
	if err != nil {
		t.Fatal(err)
	}
	at, err := adm.ListOffsetsAfterMilli(ctx, base.Add(3*time.Minute-time.Second).UnixMilli(), "times")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := start.Lookup("times", 0)
	e, _ := end.Lookup("times", 0)
	a, _ := at.Lookup("times", 0)
	if s.Offset != 0 || e.Offset != 10 || a.Offset != 3 {
		t.Fatalf("start %d (%v), end %d (%v), at 3m %d (%v); want 0, 10, 3", s.Offset, s.Err, e.Offset, e.Err, a.Offset, a.Err)
	}
	if _, err := adm.ListEndOffsets(ctx, "nope"); err != nil {
		t.Fatal(err)
	}
	miss, _ := adm.ListEndOffsets(ctx, "nope")
	if l, ok := miss.Lookup("nope", 0); ok && !errors.Is(l.Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("unknown topic: %v", l.Err)
	}
}

// ListOffsets by time answers no offset below the log start: a trim leaves the
// batch holding the new log start stored, with its records below it. When the
// only records of that batch recent enough are below the log start (timestamps
// need not grow), the next batch answers.
func TestListOffsetsByTimeAfterTrim(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "trimmed.times", qxd.TopicConfig{})
	ctx := ctxFor(t, 30*time.Second)
	cl := kafkaClient(t, n, kgo.DefaultProduceTopic("trimmed.times"))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var rs []*kgo.Record
	for i := range 10 { // one batch: offsets 0-9, record i at i minutes but 2 at 20
		at := base.Add(time.Duration(i) * time.Minute)
		if i == 2 {
			at = base.Add(20 * time.Minute)
		}
		rs = append(rs, &kgo.Record{Value: []byte("v"), Timestamp: at})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v"), Timestamp: base.Add(16 * time.Minute)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if start, err := c.Admin().DeleteRecords(ctx, "trimmed.times", 0, 6); err != nil || start != 6 {
		t.Fatalf("trim to 6: %d, %v", start, err)
	}
	adm := kadm.NewClient(cl)
	for _, tc := range []struct {
		at   time.Duration
		want int64
	}{{-time.Hour, 6}, {2 * time.Minute, 6}, {7 * time.Minute, 7}, {15 * time.Minute, 10}} {
		at, err := adm.ListOffsetsAfterMilli(ctx, base.Add(tc.at).UnixMilli(), "trimmed.times")
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := at.Lookup("trimmed.times", 0); a.Err != nil || a.Offset != tc.want {
			t.Errorf("offset after base%+v with the log start at 6: %d (%v), want %d", tc.at, a.Offset, a.Err, tc.want)
		}
	}
}

// Metadata lists the node as a broker with a stable id, leading every partition.
func TestMetadata(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "meta.data", qxd.TopicConfig{Partitions: 4})
	ctx := ctxFor(t, 30*time.Second)
	adm := kadm.NewClient(kafkaClient(t, n))
	md, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].Port == 0 || md.Controller != md.Brokers[0].NodeID {
		t.Fatalf("brokers %+v controller %d; want this node, controller", md.Brokers, md.Controller)
	}
	id := md.Brokers[0].NodeID
	td, ok := md.Topics["meta.data"]
	if !ok || td.Err != nil || len(td.Partitions) != 4 || td.ID == (kadm.TopicID{}) {
		t.Fatalf("topic: %+v", td)
	}
	for _, p := range td.Partitions {
		if p.Leader != id || !slices.Equal(p.Replicas, []int32{id}) || !slices.Equal(p.ISR, []int32{id}) {
			t.Errorf("partition %d: leader %d replicas %v isr %v, want %d", p.Partition, p.Leader, p.Replicas, p.ISR, id)
		}
	}
	dc := kmsg.NewPtrDescribeClusterRequest()
	dresp, err := dc.RequestWith(ctx, kafkaClient(t, n))
	if err != nil || dresp.ErrorCode != 0 || len(dresp.Brokers) != 1 || dresp.Brokers[0].NodeID != id || dresp.ControllerID != id {
		t.Fatalf("DescribeCluster: %+v %v", dresp, err)
	}
	md2, err := adm.Metadata(ctx, "meta.data", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if md2.Topics["missing"].Err == nil || md2.Brokers[0].NodeID != id {
		t.Fatalf("missing topic: %+v; broker %d", md2.Topics["missing"], md2.Brokers[0].NodeID)
	}
}
