package kafka_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// An OffsetCommit of -2 (earliest) or -1 (latest), as KafkaJS's resetOffsets
// sends, clears the partition's position: OffsetFetch hands the offset back, as
// Kafka does, and the SDK's DescribeGroup sees no committed offset. Another
// negative offset is INVALID_REQUEST and changes nothing. A clear is fenced as any
// commit: one from a stale generation is ILLEGAL_GENERATION and the group keeps
// its offset; the member's own clear goes through (docs/kafka.md, "Groups").
func TestOffsetCommitNegativeClears(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	const topic, group = "oc-clear", "oc-clear-group"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 2})
	addr := n.KafkaAddr()
	commit := func(member string, gen int32, p int32, off int64) int16 {
		t.Helper()
		return commitPartitions(t, addr, group, member, gen, topic, map[int32]int64{p: off})[p]
	}
	// check asks OffsetFetch v4 (KafkaJS's) and v8 and the SDK for the group's
	// offsets of both partitions; sdk -1 is no committed offset.
	check := func(step string, want [2]int64, sdk [2]int64) {
		t.Helper()
		for _, v := range []int16{4, 8} {
			if got := fetchPartitions(t, addr, v, group, topic); got != want {
				t.Errorf("%s: OffsetFetch v%d answers %v, want %v", step, v, got, want)
			}
		}
		d, err := c.Admin().DescribeGroup(ctxFor(t, 30*time.Second), group)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		got := [2]int64{-1, -1}
		for _, p := range d.Partitions {
			if p.Topic == topic {
				got[p.Partition] = p.Committed
			}
		}
		if got != sdk {
			t.Errorf("%s: the SDK sees committed offsets %v (%+v), want %v", step, got, d.Partitions, sdk)
		}
	}

	if got := commitPartitions(t, addr, group, "", -1, topic, map[int32]int64{0: 3, 1: 5}); got[0] != 0 || got[1] != 0 {
		t.Fatalf("commit of offsets 3 and 5: codes %v", got)
	}
	if code := commit("", -1, 0, -3); code != kerr.InvalidRequest.Code {
		t.Errorf("commit of offset -3: %v, want INVALID_REQUEST", kerr.ErrorForCode(code))
	}
	check("after -3", [2]int64{3, 5}, [2]int64{3, 5})
	for _, off := range []int64{-2, -1} {
		if code := commit("", -1, 0, off); code != 0 {
			t.Fatalf("commit of offset %d: %v", off, kerr.ErrorForCode(code))
		}
		check(fmt.Sprintf("after a commit of %d", off), [2]int64{off, 5}, [2]int64{-1, 5})
	}

	member, gen := joinAlone(t, addr, group, topic)
	if code := commit(member, gen-1, 1, -2); code != kerr.IllegalGeneration.Code {
		t.Errorf("commit of -2 from generation %d (the group's is %d): %v, want ILLEGAL_GENERATION", gen-1, gen, kerr.ErrorForCode(code))
	}
	check("after a stale clear", [2]int64{-1, 5}, [2]int64{-1, 5})
	if code := commit(member, gen, 1, -2); code != 0 {
		t.Fatalf("commit of -2 by the member in generation %d: %v", gen, kerr.ErrorForCode(code))
	}
	check("after the member's clear", [2]int64{-1, -2}, [2]int64{-1, -1})
}

// commitPartitions sends an OffsetCommit v5 (KafkaJS's version) of the given
// partitions of topic and returns each partition's code.
func commitPartitions(t *testing.T, addr, group, member string, generation int32, topic string, offs map[int32]int64) map[int32]int16 {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.MemberID, req.Generation = 5, group, member, generation
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	for p, off := range offs {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, off
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp := roundTrip(t, addr, req).(*kmsg.OffsetCommitResponse)
	codes := map[int32]int16{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			codes[rp.Partition] = rp.ErrorCode
		}
	}
	if len(codes) != len(offs) {
		t.Fatalf("OffsetCommit of %d partitions answered %+v", len(offs), resp.Topics)
	}
	return codes
}

// fetchPartitions asks OffsetFetch version v for group's offsets of partitions 0
// and 1 of topic.
func fetchPartitions(t *testing.T, addr string, v int16, group, topic string) [2]int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.SetVersion(v)
	if v >= 8 {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = group
		rt := kmsg.NewOffsetFetchRequestGroupTopic()
		rt.Topic, rt.Partitions = topic, []int32{0, 1}
		rg.Topics = append(rg.Topics, rt)
		req.Groups = append(req.Groups, rg)
	} else {
		req.Group = group
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0, 1}
		req.Topics = append(req.Topics, rt)
	}
	resp := roundTrip(t, addr, req).(*kmsg.OffsetFetchResponse)
	got := [2]int64{-9, -9}
	set := func(p int32, off int64, code int16) {
		if code != 0 {
			t.Fatalf("OffsetFetch v%d of %s/%d: %v", v, topic, p, kerr.ErrorForCode(code))
		}
		got[p] = off
	}
	if v >= 8 {
		if len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != 0 {
			t.Fatalf("OffsetFetch v%d: groups %+v", v, resp.Groups)
		}
		for _, rt := range resp.Groups[0].Topics {
			for _, rp := range rt.Partitions {
				set(rp.Partition, rp.Offset, rp.ErrorCode)
			}
		}
		return got
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("OffsetFetch v%d: %v", v, kerr.ErrorForCode(resp.ErrorCode))
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			set(rp.Partition, rp.Offset, rp.ErrorCode)
		}
	}
	return got
}

// joinAlone joins group as its only member, consuming topic, with JoinGroup v5
// and SyncGroup v3, and returns the member id and generation.
func joinAlone(t *testing.T, addr, group, topic string) (string, int32) {
	t.Helper()
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{topic}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Version, join.Group, join.ProtocolType = 5, group, "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 30000, 10000
	proto := kmsg.NewJoinGroupRequestProtocol()
	proto.Name, proto.Metadata = "range", meta.AppendTo(nil)
	join.Protocols = append(join.Protocols, proto)
	jr := roundTrip(t, addr, join).(*kmsg.JoinGroupResponse)
	if jr.ErrorCode == kerr.MemberIDRequired.Code {
		join.MemberID = jr.MemberID
		jr = roundTrip(t, addr, join).(*kmsg.JoinGroupResponse)
	}
	if jr.ErrorCode != 0 {
		t.Fatalf("JoinGroup: %v", kerr.ErrorForCode(jr.ErrorCode))
	}
	assign := kmsg.NewConsumerMemberAssignment()
	at := kmsg.NewConsumerMemberAssignmentTopic()
	at.Topic, at.Partitions = topic, []int32{0, 1}
	assign.Topics = append(assign.Topics, at)
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version, sync.Group, sync.Generation, sync.MemberID = 3, group, jr.Generation, jr.MemberID
	ga := kmsg.NewSyncGroupRequestGroupAssignment()
	ga.MemberID, ga.MemberAssignment = jr.MemberID, assign.AppendTo(nil)
	sync.GroupAssignment = append(sync.GroupAssignment, ga)
	if sr := roundTrip(t, addr, sync).(*kmsg.SyncGroupResponse); sr.ErrorCode != 0 {
		t.Fatalf("SyncGroup: %v", kerr.ErrorForCode(sr.ErrorCode))
	}
	return jr.MemberID, jr.Generation
}
