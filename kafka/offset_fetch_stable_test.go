package kafka_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// offsetFetch asks the listener at addr for group's committed offset of
// partition 0 of topic with OffsetFetch version v (v8: in Groups), and returns
// that partition's answer.
func offsetFetch(t *testing.T, addr string, v int16, group, topic string, stable, all bool) kmsg.OffsetFetchResponseGroupTopicPartition {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.SetVersion(v)
	req.RequireStable = stable
	var topics []kmsg.OffsetFetchRequestGroupTopic
	if !all {
		rt := kmsg.NewOffsetFetchRequestGroupTopic()
		rt.Topic, rt.Partitions = topic, []int32{0}
		topics = append(topics, rt)
	}
	if v >= 8 {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group, rg.Topics = group, topics
		req.Groups = append(req.Groups, rg)
	} else {
		req.Group = group
		for _, gt := range topics {
			rt := kmsg.NewOffsetFetchRequestTopic()
			rt.Topic, rt.Partitions = gt.Topic, gt.Partitions
			req.Topics = append(req.Topics, rt)
		}
	}
	resp := roundTrip(t, addr, req).(*kmsg.OffsetFetchResponse)
	var rps []kmsg.OffsetFetchResponseGroupTopicPartition
	if v >= 8 {
		if len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != 0 {
			t.Fatalf("offset fetch v%d: groups %+v", v, resp.Groups)
		}
		for _, rt := range resp.Groups[0].Topics {
			if rt.Topic == topic {
				rps = append(rps, rt.Partitions...)
			}
		}
	} else {
		if resp.ErrorCode != 0 {
			t.Fatalf("offset fetch v%d: error %v", v, kerr.ErrorForCode(resp.ErrorCode))
		}
		for _, rt := range resp.Topics {
			if rt.Topic == topic {
				for _, p := range rt.Partitions {
					rps = append(rps, kmsg.OffsetFetchResponseGroupTopicPartition{Partition: p.Partition, Offset: p.Offset, ErrorCode: p.ErrorCode})
				}
			}
		}
	}
	if len(rps) != 1 || rps[0].Partition != 0 {
		t.Fatalf("offset fetch v%d of %s/0: partitions %+v, want partition 0 alone", v, topic, rps)
	}
	return rps[0]
}

// TestOffsetFetchRequireStable: while a transaction holding a group's offset of a
// partition is open, OffsetFetch v7+ with require_stable answers the partition
// UNSTABLE_OFFSET_COMMIT (retriable) instead of the offset stored before it, as
// Kafka does; without require_stable, or before v7, the stored offset. Once the
// transaction commits, the new offset; once one aborts, the last committed.
func TestOffsetFetchRequireStable(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	const topic, group = "stable-offsets", "stable-g"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
	ctx := ctxFor(t, 30*time.Second)
	if _, err := c.Admin().SeekGroup(ctx, group, topic, nil, qxd.AtStart()); err != nil {
		t.Fatal(err)
	}
	p, err := c.NewProducer(qxd.TransactionalID("stable-tx"), qxd.Linger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(ctx) })
	member := qxd.GroupMemberID{Group: group, GenerationID: -1}
	tp := qxd.TopicPartition{Topic: topic, Partition: 0}
	inTxn := func(offset int64) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := p.SendOffsetsToTransaction(ctx, member, map[qxd.TopicPartition]qxd.OffsetAndMetadata{tp: {Offset: offset}}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(what string, v int16, stable, all bool, offset int64, code int16) {
		t.Helper()
		got := offsetFetch(t, n.KafkaAddr(), v, group, topic, stable, all)
		if got.Offset != offset || got.ErrorCode != code {
			t.Errorf("%s: offset fetch v%d (require_stable %v, all topics %v): offset %d, error %v; want offset %d, error %v",
				what, v, stable, all, got.Offset, kerr.ErrorForCode(got.ErrorCode), offset, kerr.ErrorForCode(code))
		}
	}
	unstable := kerr.UnstableOffsetCommit.Code

	inTxn(7)
	for _, v := range []int16{7, 8} {
		want("open transaction", v, true, false, -1, unstable)
		want("open transaction", v, true, true, -1, unstable)
		want("open transaction", v, false, false, 0, 0)
	}
	want("open transaction", 6, true, false, 0, 0) // no require_stable before v7
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	want("committed", 8, true, false, 7, 0)

	inTxn(9)
	want("second transaction open", 7, true, false, -1, unstable)
	if err := p.AbortTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	want("aborted", 7, true, false, 7, 0)
}
