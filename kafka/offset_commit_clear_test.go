package kafka_test

import (
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

// Where a group's records start and end in resetTopic: the log start every
// partition is trimmed to, and the high watermark before anything else is
// produced.
const resetLogStart, resetEnd = 4, 10

// resetTopic creates topic with three partitions of resetEnd records each, the
// first resetLogStart of them deleted (DeleteRecords), and commits for group an
// offset of -2 on partition 0 and -1 on partition 1 through kadm's CommitOffsets
// (OffsetCommit v10); partition 2 is never committed, the control.
func resetTopic(t *testing.T, n *server.Node, c *qxd.Client, topic, group string) *kgo.Client {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 3})
	cl := kafkaClient(t, n, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(3) {
		for i := range resetEnd {
			r := &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	adm := kadm.NewClient(cl)
	trim := kadm.Offsets{}
	for p := range int32(3) {
		trim.Add(kadm.Offset{Topic: topic, Partition: p, At: resetLogStart})
	}
	if dr, err := adm.DeleteRecords(ctx, trim); err != nil || dr.Error() != nil {
		t.Fatalf("DeleteRecords: %v %v", err, dr.Error())
	}
	logical := kadm.Offsets{}
	logical.Add(kadm.Offset{Topic: topic, Partition: 0, At: -2, LeaderEpoch: -1})
	logical.Add(kadm.Offset{Topic: topic, Partition: 1, At: -1, LeaderEpoch: -1})
	if cr, err := adm.CommitOffsets(ctx, group, logical); err != nil || cr.Error() != nil {
		t.Fatalf("kadm CommitOffsets of -2 and -1: %v %v", err, cr.Error())
	}
	// The Kafka door hands the commits back as they came.
	fo, err := adm.FetchOffsets(ctx, group)
	if err != nil || fo.Error() != nil {
		t.Fatalf("kadm FetchOffsets: %v %v", err, fo.Error())
	}
	for p, want := range map[int32]int64{0: -2, 1: -1} {
		if o, ok := fo.Lookup(topic, p); !ok || o.At != want {
			t.Fatalf("kadm FetchOffsets of %s/%d: %+v (found %v), want %d", topic, p, o, ok, want)
		}
	}
	return cl
}

// fetchWritten is a franz-go hook that signals each Fetch request the client
// writes: a consumer's first one means its start offsets are resolved.
type fetchWritten chan struct{}

func (f fetchWritten) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.Fetch) && err == nil {
		select {
		case f <- struct{}{}:
		default:
		}
	}
}

// A franz-go group consumer reads a committed -2 and -1 as no committed offset
// and starts where kgo.ConsumeResetOffset says, at the log start or at the end,
// as on a partition never committed (franz-go treats any negative offset so,
// as the Java client does). The SDK's DescribeGroup shows those partitions as
// never committed: before a member joins, not at all; while one is a member, no
// committed offset, lag from the log start, no note — the same row as the
// never-committed control partition.
func TestOffsetCommitClearFranzGoConsumer(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	ctx := ctxFor(t, 90*time.Second)
	for _, tc := range []struct {
		name  string
		reset kgo.Offset
		first int64 // the offset each partition's first record has
	}{
		{"AtStart", kgo.NewOffset().AtStart(), resetLogStart},
		{"AtEnd", kgo.NewOffset().AtEnd(), resetEnd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := "reset-kgo-"+tc.name, "reset-kgo-group-"+tc.name
			prod := resetTopic(t, n, c, topic, group)
			// Without members the group exists (it has stored commits) and
			// lists no partition: none has a committed offset.
			if d, err := c.Admin().DescribeGroup(ctx, group); err != nil || d.State != "Empty" || len(d.Partitions) != 0 {
				t.Fatalf("DescribeGroup before a member joins: %+v, %v; want Empty with no partitions", d, err)
			}
			fetched := make(fetchWritten, 1)
			cons := kafkaClient(t, n, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(tc.reset), kgo.DisableAutoCommit(), kgo.WithHooks(fetched))
			if tc.first == resetEnd {
				// Records produced once the consumer fetches are past its start.
				select {
				case <-fetched:
				case <-ctx.Done():
					t.Fatal("the consumer sent no Fetch")
				}
				for p := range int32(3) {
					if err := prod.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("after")}).FirstErr(); err != nil {
						t.Fatal(err)
					}
				}
			}
			first, hw := map[int32]int64{}, tc.first+1
			if tc.first == resetLogStart {
				hw = resetEnd
			}
			for len(first) < 3 {
				fs := cons.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("first records read %v before %v, want each partition's first at %d", first, err, tc.first)
				}
				fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
				fs.EachRecord(func(r *kgo.Record) {
					if _, ok := first[r.Partition]; !ok {
						first[r.Partition] = r.Offset
					}
				})
			}
			for p, off := range first {
				if off != tc.first {
					t.Errorf("partition %d (%s): the consumer started at %d, want %d", p,
						[]string{"committed -2", "committed -1", "never committed"}[p], off, tc.first)
				}
			}
			d, err := c.Admin().DescribeGroup(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			var rows []qxd.GroupPartition
			for _, r := range d.Partitions {
				if r.Topic == topic {
					rows = append(rows, r)
				}
			}
			if len(rows) != 3 {
				t.Fatalf("DescribeGroup shows partitions %+v, want 3 of %s", d.Partitions, topic)
			}
			for _, r := range rows {
				want := qxd.GroupPartition{Topic: topic, Partition: r.Partition, Committed: -1, LogStart: resetLogStart,
					HighWatermark: hw, LastStableOffset: -1, Lag: hw - resetLogStart, Member: rows[2].Member}
				if r != want || r.Member == "" {
					t.Errorf("DescribeGroup shows %+v, want %+v (as never committed)", r, want)
				}
			}
		})
	}
}
