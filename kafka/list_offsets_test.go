package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// tsBatch is a RecordBatch of one record per timestamp (Unix ms), in that order.
func tsBatch(t *testing.T, ts ...int64) []byte {
	t.Helper()
	var bb semantics.BatchBuilder
	for i, ms := range ts {
		bb.Append(&semantics.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "t%d", ms), Timestamp: time.UnixMilli(ms)})
	}
	b, err := bb.Build(nil, semantics.NoProducer, semantics.CompressionNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// produceBatches stores each batch, in order, on partition 0 of topic through
// broker leader (-1: any broker, on a single node).
func produceRawBatches(t *testing.T, ctx context.Context, cl *kgo.Client, leader int32, topic string, batches ...[]byte) {
	t.Helper()
	for i, b := range batches {
		for {
			var (
				kresp kmsg.Response
				err   error
			)
			req := produceReq(-1, map[string]map[int32][]byte{topic: {0: b}})
			if leader < 0 {
				kresp, err = cl.Request(ctx, req)
			} else {
				kresp, err = cl.Broker(int(leader)).Request(ctx, req)
			}
			if err != nil {
				t.Fatalf("produce batch %d: %v", i, err)
			}
			code := kresp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
			if code == 0 {
				break
			}
			if err := kerr.ErrorForCode(code); !kerr.IsRetriable(err) || ctx.Err() != nil {
				t.Fatalf("produce batch %d: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// pinned returns a client of n whose ListOffsets goes no higher than version v.
func pinned(t *testing.T, n *server.Node, v int16) *kgo.Client {
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(kmsg.ListOffsets.Int16(), v)
	return kafkaClient(t, n, kgo.MaxVersions(vs))
}

// listOffset sends a ListOffsets of version v for partition 0 of topic at
// timestamp ts (to the partition's leader) and returns its answer.
func listOffset(t *testing.T, ctx context.Context, cl *kgo.Client, v int16, topic string, ts int64, isolation int8) kmsg.ListOffsetsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version, req.IsolationLevel = v, isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = ts
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	for {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("ListOffsets v%d timestamp %d: %v", v, ts, err)
		}
		if resp.Version != v {
			t.Fatalf("ListOffsets sent as v%d, want v%d (is v%d advertised?)", resp.Version, v, v)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode == kerr.NotLeaderForPartition.Code && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond) // the client reads the metadata again
			continue
		}
		return p
	}
}

// ListOffsets v7 (KIP-734): timestamp -3 answers the offset and timestamp of
// the record with the largest timestamp, the first of them when several have
// it, wherever it is in the partition; -1, -1 while the partition is empty. Once
// the records holding it are trimmed (DeleteRecords), the largest of those left
// is answered: both when the log start moves inside the batch that held it and
// when that batch is removed. v8's -4 is the log start, v9's -5 and v11's -6
// (nothing is tiered) -1. A version before v7 refuses -3.
func TestListOffsetsMaxTimestamp(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	ctx := ctxFor(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "stamps", qxd.TopicConfig{Partitions: 1})

	for _, v := range []int16{7, 8, 9, 10, 11} {
		p := listOffset(t, ctx, pinned(t, n, v), v, "stamps", -3, 0)
		if p.ErrorCode != 0 || p.Offset != -1 || p.Timestamp != -1 {
			t.Fatalf("v%d max timestamp of an empty partition: code %d offset %d timestamp %d, want -1 -1", v, p.ErrorCode, p.Offset, p.Timestamp)
		}
	}

	cl := kafkaClient(t, n, byName())
	produceRawBatches(t, ctx, cl, -1, "stamps",
		tsBatch(t, 1000, 5000, 3000), // offsets 0-2: the largest at 1
		tsBatch(t, 2000, 5000),       // 3-4: as large, later
		tsBatch(t, 4000))             // 5
	check := func(what string, wantOff, wantTS int64) {
		t.Helper()
		for _, v := range []int16{7, 8, 9, 10, 11} {
			p := listOffset(t, ctx, pinned(t, n, v), v, "stamps", -3, 0)
			if p.ErrorCode != 0 || p.Offset != wantOff || p.Timestamp != wantTS {
				t.Fatalf("%s: v%d max timestamp: code %d offset %d timestamp %d, want offset %d timestamp %d",
					what, v, p.ErrorCode, p.Offset, p.Timestamp, wantOff, wantTS)
			}
			if wantOff >= 0 && p.LeaderEpoch < 0 {
				t.Fatalf("%s: v%d max timestamp: leader epoch %d", what, v, p.LeaderEpoch)
			}
		}
		lo, err := kadm.NewClient(cl).ListMaxTimestampOffsets(ctx, "stamps")
		if err != nil {
			t.Fatal(err)
		}
		if o := lo["stamps"][0]; o.Err != nil || o.Offset != wantOff || o.Timestamp != wantTS {
			t.Fatalf("%s: kadm ListMaxTimestampOffsets: %+v, want offset %d timestamp %d", what, o, wantOff, wantTS)
		}
	}
	check("out of order", 1, 5000)
	if p := listOffset(t, ctx, pinned(t, n, 7), 7, "stamps", -3, 1); p.ErrorCode != 0 || p.Offset != 1 || p.Timestamp != 5000 {
		t.Fatalf("read_committed max timestamp: %+v, want offset 1 timestamp 5000", p)
	}

	// Versions before v7 do not know -3; v7 does not know -4, v8 not -5.
	for _, c := range []struct {
		v  int16
		ts int64
	}{{6, -3}, {7, -4}, {8, -5}, {10, -6}, {11, -7}} {
		if p := listOffset(t, ctx, pinned(t, n, c.v), c.v, "stamps", c.ts, 0); p.ErrorCode != kerr.InvalidRequest.Code {
			t.Errorf("v%d timestamp %d: code %d, want INVALID_REQUEST", c.v, c.ts, p.ErrorCode)
		}
	}

	adm := kadm.NewClient(cl)
	trim := func(to int64) {
		t.Helper()
		ds, err := adm.DeleteRecords(ctx, kadm.Offsets{"stamps": {0: {At: to}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := ds.Error(); err != nil {
			t.Fatal(err)
		}
	}
	trim(2) // the log start inside the first batch, past the record at 1
	check("log start at 2", 4, 5000)
	for _, v := range []int16{8, 9, 10, 11} {
		if p := listOffset(t, ctx, pinned(t, n, v), v, "stamps", -4, 0); p.ErrorCode != 0 || p.Offset != 2 || p.Timestamp != -1 {
			t.Fatalf("v%d earliest local: %+v, want offset 2 timestamp -1", v, p)
		}
	}
	for _, c := range []struct {
		v  int16
		ts int64
	}{{9, -5}, {10, -5}, {11, -5}, {11, -6}} {
		if p := listOffset(t, ctx, pinned(t, n, c.v), c.v, "stamps", c.ts, 0); p.ErrorCode != 0 || p.Offset != -1 || p.Timestamp != -1 {
			t.Fatalf("v%d timestamp %d (nothing tiered): %+v, want offset -1 timestamp -1", c.v, c.ts, p)
		}
	}
	trim(5) // the first two batches go
	check("log start at 5", 5, 4000)
	produceRawBatches(t, ctx, cl, -1, "stamps", tsBatch(t, 3500, 4500, 4500)) // 6-8
	check("after a later append", 7, 4500)
	trim(9)
	check("everything trimmed", -1, -1)
}

// The largest timestamp survives a change of the partition's leader on a
// 3-node cluster: the new leader's writer knows it from the checkpoint and
// the batches after it, and keeps it as appends go on; after a trim removes
// its batch, the new leader finds the largest of the rest. The leader epoch
// answered is that of the record's batch, as Kafka answers.
func TestListOffsetsMaxTimestampFailover(t *testing.T) {
	nodes := sharedKafkaCluster(t)
	c := qxdtest.Connect(t, nodes[0])
	moves := clusterTopic(t, c, "moves", qxd.TopicConfig{Partitions: 1, Replicas: 3})
	ctx := ctxFor(t, 120*time.Second)

	leader, e1 := partitionEpoch(t, ctx, nodes, moves, -1)
	cl := kafkaClient(t, nodes[0], byName())
	produceRawBatches(t, ctx, cl, leader, moves, tsBatch(t, 1000, 9000, 2000), tsBatch(t, 3000))
	time.Sleep(1200 * time.Millisecond) // the next append carries a checkpoint
	produceRawBatches(t, ctx, cl, leader, moves, tsBatch(t, 4000, 8000), tsBatch(t, 500))
	// offsets: 0 1000, 1 9000, 2 2000, 3 3000, 4 4000, 5 8000, 6 500

	adm := kadm.NewClient(cl)
	check := func(what string, wantOff, wantTS int64, wantEpoch int32) {
		t.Helper()
		p := listOffset(t, ctx, pinned(t, nodes[1], 7), 7, moves, -3, 0)
		if p.ErrorCode != 0 || p.Offset != wantOff || p.Timestamp != wantTS || p.LeaderEpoch != wantEpoch {
			t.Fatalf("%s: v7 max timestamp: code %d offset %d timestamp %d epoch %d, want offset %d timestamp %d epoch %d (its batch's)",
				what, p.ErrorCode, p.Offset, p.Timestamp, p.LeaderEpoch, wantOff, wantTS, wantEpoch)
		}
		lo, err := adm.ListMaxTimestampOffsets(ctx, moves)
		if err != nil {
			t.Fatal(err)
		}
		if o := lo[moves][0]; o.Err != nil || o.Offset != wantOff || o.Timestamp != wantTS {
			t.Fatalf("%s: kadm ListMaxTimestampOffsets: %+v, want offset %d timestamp %d", what, o, wantOff, wantTS)
		}
	}
	check("before the move", 1, 9000, e1)

	// The writer's checkpoint in the stream carries the mark.
	js := qxdtest.JetStream(t, nodes[0])
	st, err := js.Stream(ctx, semantics.StreamName(moves, 0))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, semantics.CheckpointSubject(moves, 0))
	if err != nil {
		t.Fatalf("the partition's last checkpoint: %v", err)
	}
	var ck semantics.Checkpoint
	if err := json.Unmarshal([]byte(m.Header.Get(semantics.CheckpointHeader)), &ck); err != nil {
		t.Fatal(err)
	}
	if mt := ck.MaxTimestamp; mt == nil || mt.Timestamp != 9000 || mt.BaseOffset != 0 {
		t.Fatalf("checkpoint at sequence %d carries max timestamp %+v, want 9000 in the batch at offset 0", ck.Seq, mt)
	}
	leader, e2 := moveLeader(t, ctx, nodes, moves, e1)
	check("after the move", 1, 9000, e1)
	produceRawBatches(t, ctx, cl, leader, moves, tsBatch(t, 7000)) // 7
	check("after an append on the new leader", 1, 9000, e1)

	ds, err := adm.DeleteRecords(ctx, kadm.Offsets{moves: {0: {At: 3}}})
	if err != nil || ds.Error() != nil {
		t.Fatalf("trim: %v %v", err, ds.Error())
	}
	check("after the trim", 5, 8000, e1)
	produceRawBatches(t, ctx, cl, leader, moves, tsBatch(t, 8500)) // 8
	check("after an append past the trim", 8, 8500, e2)
}

// A writer loaded from a checkpoint that carries no largest timestamp (one an
// older qxd wrote) finds it by scanning the log when first asked, and the
// checkpoints it writes after that carry the whole log's, not only what it
// appended since the load.
func TestListOffsetsMaxTimestampOldCheckpoint(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	ctx := ctxFor(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "oldck", qxd.TopicConfig{Partitions: 1})
	cl := kafkaClient(t, n, byName())
	produceRawBatches(t, ctx, cl, -1, "oldck", tsBatch(t, 1000, 9000), tsBatch(t, 2000)) // offsets 0-2

	// A batch with a checkpoint of the older form, as an older writer stored it.
	js, err := jetstream.New(c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, semantics.StreamName("oldck", 0))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old := tsBatch(t, 3000)
	semantics.SetBaseOffset(old, 3)
	msg := nats.NewMsg(semantics.CheckpointSubject("oldck", 0))
	msg.Data = old
	msg.Header.Set(semantics.CheckpointHeader, fmt.Sprintf(`{"seq":%d,"next":4}`, info.State.LastSeq+1))
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	produceRawBatches(t, ctx, cl, -1, "oldck", tsBatch(t, 500)) // 4, after the writer reloads

	p := listOffset(t, ctx, pinned(t, n, 7), 7, "oldck", -3, 0)
	if p.ErrorCode != 0 || p.Offset != 1 || p.Timestamp != 9000 {
		t.Fatalf("max timestamp after a load from an old checkpoint: %+v, want offset 1 timestamp 9000", p)
	}
	time.Sleep(1100 * time.Millisecond)                         // the next append carries a checkpoint
	produceRawBatches(t, ctx, cl, -1, "oldck", tsBatch(t, 600)) // 5
	m, err := st.GetLastMsgForSubject(ctx, semantics.CheckpointSubject("oldck", 0))
	if err != nil {
		t.Fatal(err)
	}
	var ck semantics.Checkpoint
	if err := json.Unmarshal([]byte(m.Header.Get(semantics.CheckpointHeader)), &ck); err != nil {
		t.Fatal(err)
	}
	if mt := ck.MaxTimestamp; ck.Next != 6 || mt == nil || mt.Timestamp != 9000 || mt.BaseOffset != 0 {
		t.Fatalf("checkpoint (next %d) carries max timestamp %+v, want 9000 in the batch at offset 0", ck.Next, mt)
	}
}

// On a compacted topic the record with the largest timestamp leaves when a
// newer record of its key comes; the largest of those left is answered.
func TestListOffsetsMaxTimestampCompacted(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	ctx := ctxFor(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "compacted", qxd.TopicConfig{Partitions: 1, Compact: true})
	cl := kafkaClient(t, n, byName())
	keyed := func(key string, ms int64) []byte {
		var bb semantics.BatchBuilder
		bb.Append(&semantics.Record{Key: []byte(key), Value: []byte("v"), Timestamp: time.UnixMilli(ms)})
		b, err := bb.Build(nil, semantics.NoProducer, semantics.CompressionNone)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	produceRawBatches(t, ctx, cl, -1, "compacted", keyed("a", 9000), keyed("b", 1000)) // offsets 0, 1
	if p := listOffset(t, ctx, pinned(t, n, 7), 7, "compacted", -3, 0); p.ErrorCode != 0 || p.Offset != 0 || p.Timestamp != 9000 {
		t.Fatalf("max timestamp: %+v, want offset 0 timestamp 9000", p)
	}
	produceRawBatches(t, ctx, cl, -1, "compacted", keyed("a", 2000)) // 2 replaces 0
	if p := listOffset(t, ctx, pinned(t, n, 7), 7, "compacted", -3, 0); p.ErrorCode != 0 || p.Offset != 2 || p.Timestamp != 2000 {
		t.Fatalf("max timestamp after its record was compacted away: %+v, want offset 2 timestamp 2000", p)
	}
}
