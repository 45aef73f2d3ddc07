package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// partitionEpoch reads partition 0 of topic's leader and leader epoch from each
// node's Metadata until every node answers the same leader with an epoch above
// after, and returns them.
func partitionEpoch(t *testing.T, ctx context.Context, nodes []*server.Node, topic string, after int32) (leader, epoch int32) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		leader, epoch = -2, -2
		same := true
		for _, n := range nodes {
			md, err := kadm.NewClient(kafkaClient(t, n)).Metadata(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			p := md.Topics[topic].Partitions[0]
			if leader == -2 {
				leader, epoch = p.Leader, p.LeaderEpoch
			} else if p.Leader != leader || p.LeaderEpoch != epoch {
				same = false
			}
		}
		if same && leader >= 0 && epoch > after {
			return leader, epoch
		}
		if time.Now().After(deadline) {
			t.Fatalf("metadata of %s: leader %d epoch %d (same on every node: %v), want an epoch above %d on every node", topic, leader, epoch, same, after)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// moveLeader asks the leader of partition 0 of topic to step down, and returns
// the next leader and its epoch (above after) once every node names them.
func moveLeader(t *testing.T, ctx context.Context, nodes []*server.Node, topic string, after int32) (leader, epoch int32) {
	t.Helper()
	nc, err := nats.Connect(nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.RequestWithContext(ctx, semantics.Subject(semantics.JSStreamLeaderStepDownPrefix, semantics.StreamName(topic, 0)), nil); err != nil {
		t.Fatalf("step the partition's leader down: %v", err)
	}
	return partitionEpoch(t, ctx, nodes, topic, after)
}

// epochEnd sends OffsetForLeaderEpoch for partition 0 of topic to broker id.
func epochEnd(t *testing.T, ctx context.Context, cl *kgo.Client, id int32, topic string, current, epoch int32) (int16, int32, int64) {
	t.Helper()
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version = 4
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = 0, current, epoch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := cl.Broker(int(id)).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	return p.ErrorCode, p.LeaderEpoch, p.EndOffset
}

// TestKafkaLeaderEpochs: a partition's leader epoch, the same in every node's
// Metadata, grows when its leader changes; the records each leader appended carry
// its epoch; OffsetForLeaderEpoch on the leader says where each epoch ended; a
// client with a stale or future epoch is told so (FENCED_LEADER_EPOCH,
// UNKNOWN_LEADER_EPOCH), as by Kafka.
func TestKafkaLeaderEpochs(t *testing.T) {
	nodes := sharedKafkaCluster(t)
	c := qxdtest.Connect(t, nodes[0])
	epochs := clusterTopic(t, c, "epochs", qxd.TopicConfig{Partitions: 1, Replicas: 3})
	ctx := ctxFor(t, 120*time.Second)

	leader1, e1 := partitionEpoch(t, ctx, nodes, epochs, 0)
	cl := kafkaClient(t, nodes[0], kgo.DefaultProduceTopic(epochs))
	produce := func(from, n int) {
		for i := from; i < from+n; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	produce(0, 5)

	// The leader steps down; another is elected with a greater epoch.
	leader2, e2 := moveLeader(t, ctx, nodes, epochs, e1)
	t.Logf("leader %d at epoch %d, then %d at epoch %d", leader1, e1, leader2, e2)
	produce(5, 3)

	cons := kafkaClient(t, nodes[1], kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{epochs: {0: kgo.NewOffset().AtStart()}}))
	var got []*kgo.Record
	for len(got) < 8 {
		fs := cons.PollFetches(ctx)
		if err := fs.Err(); err != nil || ctx.Err() != nil {
			t.Fatalf("consume after %d records: %v", len(got), err)
		}
		got = append(got, fs.Records()...)
	}
	for _, r := range got {
		want := e1
		if r.Offset >= 5 {
			want = e2
		}
		if r.LeaderEpoch != want {
			t.Errorf("record at offset %d has leader epoch %d, want %d", r.Offset, r.LeaderEpoch, want)
		}
	}

	for _, tc := range []struct {
		name        string
		ask         int32
		code        int16
		epoch       int32
		end         int64
		current     int32
		wantCurrent bool
	}{
		{"the first leader's epoch ends where the second began", e1, 0, e1, 5, e2, true},
		{"the current epoch ends at the high watermark", e2, 0, e2, 8, -1, false},
		{"an epoch before any is answered with where the log begins", e1 - 1, 0, e1 - 1, 0, -1, false},
		{"an epoch after the current is unknown", e2 + 1, 0, -1, -1, -1, false},
		{"a stale current epoch is fenced", e2, kerr.FencedLeaderEpoch.Code, -1, -1, e1, true},
		{"a future current epoch is unknown", e2, kerr.UnknownLeaderEpoch.Code, -1, -1, e2 + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, epoch, end := epochEnd(t, ctx, cl, leader2, epochs, tc.current, tc.ask)
			if code != tc.code || epoch != tc.epoch || end != tc.end {
				t.Fatalf("OffsetForLeaderEpoch(current %d, epoch %d) = code %d, epoch %d, end %d; want code %d, epoch %d, end %d",
					tc.current, tc.ask, code, epoch, end, tc.code, tc.epoch, tc.end)
			}
		})
	}
	if code, _, _ := epochEnd(t, ctx, cl, leader1, epochs, -1, e1); leader1 != leader2 && code != kerr.NotLeaderForPartition.Code {
		t.Errorf("OffsetForLeaderEpoch on a node that no longer leads: code %d, want NOT_LEADER_OR_FOLLOWER", code)
	}

	// Fetch and ListOffsets check the client's current epoch too.
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.MaxWaitMillis, fetch.MaxBytes = 12, 0, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = epochs, topicID(t, ctx, cl, epochs)
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.CurrentLeaderEpoch, fp.PartitionMaxBytes = 0, e1, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	resp, err := cl.Broker(int(leader2)).Request(ctx, fetch)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.FencedLeaderEpoch.Code {
		t.Errorf("fetch with the old leader epoch: code %d, want FENCED_LEADER_EPOCH", code)
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version = 6
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = epochs
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition, lp.CurrentLeaderEpoch, lp.Timestamp = 0, e2, -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	lresp, err := cl.Broker(int(leader2)).Request(ctx, lo)
	if err != nil {
		t.Fatal(err)
	}
	if p := lresp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 8 || p.LeaderEpoch != e2 {
		t.Errorf("ListOffsets latest: code %d offset %d epoch %d, want 0, 8, %d", p.ErrorCode, p.Offset, p.LeaderEpoch, e2)
	}
}

// TestKafkaLeaderEpochSingleNode: on one node (no RAFT) the leader epoch is 0,
// in Metadata and on the records, and OffsetForLeaderEpoch answers it.
func TestKafkaLeaderEpochSingleNode(t *testing.T) {
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "one", qxd.TopicConfig{Partitions: 1})
	ctx := ctxFor(t, 30*time.Second)
	cl := kafkaClient(t, n, kgo.DefaultProduceTopic("one"))
	for i := range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	leader, epoch := partitionEpoch(t, ctx, []*server.Node{n}, "one", -1)
	if epoch != 0 {
		t.Fatalf("single node: leader epoch %d, want 0", epoch)
	}
	if code, e, end := epochEnd(t, ctx, cl, leader, "one", 0, 0); code != 0 || e != 0 || end != 3 {
		t.Fatalf("OffsetForLeaderEpoch(0) = code %d, epoch %d, end %d; want 0, 0, 3", code, e, end)
	}
}

// TestKafkaLeaderChangeUnderLoad: while franz-go produces and consumes, the
// partition's leader steps down twice; the clients follow the new leaders (the
// consumer validating its position with OffsetForLeaderEpoch, as KIP-320
// clients do), every acknowledged record is read once, in order, and no client
// reports data loss.
func TestKafkaLeaderChangeUnderLoad(t *testing.T) {
	nodes := sharedKafkaCluster(t)
	c := qxdtest.Connect(t, nodes[0])
	moving := clusterTopic(t, c, "moving", qxd.TopicConfig{Partitions: 1, Replicas: 3})
	ctx := ctxFor(t, 120*time.Second)
	_, e0 := partitionEpoch(t, ctx, nodes, moving, 0)

	prod := kafkaClient(t, nodes[0], kgo.DefaultProduceTopic(moving))
	cons := kafkaClient(t, nodes[1], kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{moving: {0: kgo.NewOffset().AtStart()}}))
	nc, err := nats.Connect(nodes[2].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	acked := make(chan int64, 10000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 600; i++ {
			r := &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)}
			if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Errorf("produce %d: %v", i, err)
				return
			}
			acked <- r.Offset
			if i == 200 || i == 400 {
				if _, err := nc.RequestWithContext(ctx, semantics.Subject(semantics.JSStreamLeaderStepDownPrefix, semantics.StreamName(moving, 0)), nil); err != nil {
					t.Errorf("step down: %v", err)
				}
			}
		}
	}()
	next := int64(0)
	for next < 600 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 600 records", next)
		}
		fs.EachError(func(_ string, _ int32, err error) {
			var loss *kgo.ErrDataLoss
			if errors.As(err, &loss) {
				t.Fatalf("the consumer reports data loss: %v", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != next || string(r.Value) != fmt.Sprintf("v%d", next) {
				t.Fatalf("read %s at %d, want v%d at %d", r.Value, r.Offset, next, next)
			}
			next++
		})
	}
	<-done
	close(acked)
	n := int64(0)
	for o := range acked {
		if o != n {
			t.Fatalf("acknowledged offset %d, want %d", o, n)
		}
		n++
	}
	if _, e := partitionEpoch(t, ctx, nodes, moving, e0); e <= e0 {
		t.Fatalf("epoch %d after two step-downs, want above %d", e, e0)
	}
}
