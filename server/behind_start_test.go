package server_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"slices"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestReadsPastABehindHighWatermark starts reads at an offset a group
// committed, past the high watermark of a replica that answers for its
// partition while the partition has no leader (partition.Offsets.Behind): a
// Kafka fetch, and an SDK group member whose reset policy is earliest. The
// replica is really behind (see behindScene): it holds records 0 to 4 where the
// leader stored 0 to 9, and the group committed 7. Kafka's leaders answer
// OFFSET_OUT_OF_RANGE only past their log's end, and a client told so goes back
// to its reset policy: earliest reads the partition again from offset 0, as the
// pair-cut and Kafka fault drills saw. So the fetch must answer
// NOT_LEADER_OR_FOLLOWER, and the member must start at 7; once the partition
// has its leader again, both read records 7 to 9, never from 0. One scene
// serves both doors: it takes 15–25 s, most of it nats-server's, whose member
// of a group without a leader answers the group's info only once its JetStream
// has run for 10 s.
func TestReadsPastABehindHighWatermark(t *testing.T) {
	t.Parallel()
	const topic, group, committed = "behind-start", "behind-start-group", 7
	s := startBehindScene(t, topic, func(ctx context.Context, c *qxd.Client) {
		if _, err := c.Admin().SeekGroup(ctx, group, topic, []int32{0}, qxd.At(committed)); err != nil {
			t.Fatalf("commit offset %d for group %s: %v", committed, group, err)
		}
	})
	ctx := s.ctx

	// The Kafka fetch, through the listener of the node whose replica is behind.
	meta, err := s.client.Admin().Topic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	id, err := base64.RawURLEncoding.DecodeString(meta.ID)
	if err != nil || len(id) != 16 {
		t.Fatalf("topic id %q: %v", meta.ID, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.behind.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fetch := func(offset int64) kmsg.FetchResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 500, 1, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		copy(rt.TopicID[:], id)
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 0, offset, 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		// The node, alone while the third one restarts, may count itself cut
		// off and suspend its listener (connections refused) for a moment.
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, err := cl.SeedBrokers()[0].Request(ctx, req)
			if err == nil {
				r := resp.(*kmsg.FetchResponse)
				if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
					t.Fatalf("fetch at offset %d: answered %d topics", offset, len(r.Topics))
				}
				return r.Topics[0].Partitions[0]
			}
			if time.Now().After(end) {
				t.Fatalf("fetch at offset %d: %v", offset, err)
			}
		}
	}
	if rp := fetch(committed); rp.ErrorCode != semantics.ErrNotLeader.Code {
		t.Errorf("a fetch at offset %d, past the high watermark %d of a replica answering for the partition without a leader (the leader's is %d), answered error %d (high watermark %d), want NOT_LEADER_OR_FOLLOWER (%d)",
			committed, behindHeld, behindStored, rp.ErrorCode, rp.HighWatermark, semantics.ErrNotLeader.Code)
	}

	// The SDK group member, which starts at the group's commit.
	c, err := qxd.Connect(ctx, s.behind.ClientURL()+","+s.nodes[s.other].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cons := qxdtest.NewConsumer(t, c, qxd.Group(group), qxd.AutoOffsetReset(qxd.ResetEarliest))
	if err := cons.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	// Every record the member reads, from its start on: the replica answers
	// reads of what it holds while the partition has no leader.
	var got []int64
	poll := func(d time.Duration) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		rs, err := cons.Poll(pctx)
		if err != nil && pctx.Err() == nil {
			t.Fatalf("poll: %v", err)
		}
		for _, r := range rs {
			got = append(got, r.Offset)
		}
	}
	pos, ok := int64(0), false
	for end := time.Now().Add(30 * time.Second); !ok; pos, ok = cons.Position(topic, 0) {
		if time.Now().After(end) {
			t.Fatal("the group member was not assigned the partition within 30 s")
		}
		poll(200 * time.Millisecond)
	}
	poll(500 * time.Millisecond)
	if pos < committed || len(got) > 0 {
		t.Errorf("a group member with commit %d, past the high watermark %d of a replica answering for the partition without a leader (the leader's is %d), and reset policy earliest is at %d, having read offsets %v; want it to start at %d",
			committed, behindHeld, behindStored, pos, got, committed)
	}

	s.recover()
	var rp kmsg.FetchResponseTopicPartition
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if rp = fetch(committed); rp.ErrorCode == 0 && len(rp.RecordBatches) > 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("a fetch at offset %d answered no records within 30 s of the leader's return: error %d, high watermark %d", committed, rp.ErrorCode, rp.HighWatermark)
		}
	}
	if first := batchBases(t, rp.RecordBatches); first[0] > committed || rp.HighWatermark != behindStored {
		t.Errorf("a fetch at offset %d once the leader is back: batches from offset %v, high watermark %d; want the batch holding %d, high watermark %d",
			committed, first, rp.HighWatermark, committed, behindStored)
	}
	for end := time.Now().Add(30 * time.Second); len(got) < behindStored-committed && time.Now().Before(end); {
		poll(time.Second)
	}
	if !slices.Equal(got, []int64{7, 8, 9}) {
		t.Errorf("the group member read offsets %v from its start to the leader's return and after, want 7 to 9", got)
	}
}

// batchBases returns the base offsets of the record batches in b.
func batchBases(t *testing.T, b []byte) []int64 {
	t.Helper()
	var bases []int64
	for len(b) >= 12 {
		var rb kmsg.RecordBatch
		n := 12 + int(binary.BigEndian.Uint32(b[8:12]))
		if n > len(b) || rb.ReadFrom(b[:n]) != nil {
			t.Fatalf("a fetched record batch does not decode (%d bytes left)", len(b))
		}
		bases = append(bases, rb.FirstOffset)
		b = b[n:]
	}
	if len(bases) == 0 {
		t.Fatal("no record batch fetched")
	}
	return bases
}

// behindHeld and behindStored are the high watermarks of behindScene's
// replica behind and of its partition's leader.
const behindHeld, behindStored = 5, 10

// behindScene is a three-node cluster with one three-replica partition that has
// no leader while the replica on node behind holds fewer batches than the
// leader stored, as a replica that woke from a pause or came back from a cut
// answers while its group elects. It is made so: records 0 to 4 are stored on
// all three replicas; the third node stops; behind's replica pauses its
// applies (as a follower catching up does: RAFT's log still takes, and
// acknowledges, every entry, which the store gets only on resume) while the
// leader stores records 5 to 9; the leader's node stops; the third node starts
// again and campaigns with its shorter log. Behind's replica refuses the vote,
// takes the higher term and names no leader; paused, it does not campaign, and
// the third node cannot win: the group stays without a leader, and JetStream
// lets behind's replica answer the stream's info with its own state, a high
// watermark of 5 (nats-server v2.15.2 jetstream_api.go jsStreamInfoRequest,
// isGroupLeaderless).
type behindScene struct {
	t       *testing.T
	ctx     context.Context
	stream  string
	cfgs    []server.Config
	nodes   []*server.Node
	leader  int // the stopped leader's index in nodes
	other   int // the third node's
	behind  *server.Node
	replica natsserver.RaftNode // behind's RAFT node of the partition
	client  *qxd.Client
}

// startBehindScene makes the scene for topic (one partition, three replicas);
// stored runs once records 0 to 9 are stored on the leader, before it stops.
func startBehindScene(t *testing.T, topic string, stored func(context.Context, *qxd.Client)) *behindScene {
	t.Helper()
	ctx := qxdtest.Context(t, 3*time.Minute)
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].KafkaListen = "127.0.0.1:0"
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	c := qxdtest.ConnectCluster(t, nodes)
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	p := qxdtest.NewProducer(t, c)
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			// One batch a record: offset i at stream sequence i+1.
			if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: []byte{byte(i)}}); err != nil {
				t.Fatalf("produce record %d: %v", i, err)
			}
		}
	}
	produce(0, behindHeld)
	s := &behindScene{t: t, ctx: ctx, stream: semantics.StreamName(topic, 0), cfgs: cfgs, nodes: nodes, client: c, other: -1}
	group, leader := settledGroup(t, ctx, nodes, s.stream)
	for i, n := range nodes {
		switch {
		case n == leader:
			s.leader = i
		case s.behind == nil:
			s.behind = n
		default:
			s.other = i
		}
	}
	if err := nodes[s.other].Close(ctx); err != nil {
		t.Fatal(err)
	}
	s.replica = s.behind.RaftNode(group)
	if s.replica == nil {
		t.Fatalf("no RAFT node %s on %s", group, s.behind.Name())
	}
	if err := s.replica.PauseApply(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.replica.ResumeApply)
	produce(behindHeld, behindStored)
	if stored != nil {
		stored(ctx, c)
	}
	if err := nodes[s.leader].Close(ctx); err != nil {
		t.Fatal(err)
	}
	if rn := s.restart(s.other).RaftNode(group); rn != nil {
		// It would campaign on its own within an election timeout (4–9 s).
		_ = rn.CampaignImmediately()
	}
	s.waitBehindAnswer()
	return s
}

// waitBehindAnswer waits until the stream's info is answered with no leader
// and the replica's state: behindHeld batches. A member of a group without a
// leader answers only once it has run for a while (10 s after its server's
// JetStream started), and the replica must have taken the third node's term.
func (s *behindScene) waitBehindAnswer() {
	s.t.Helper()
	nc, err := nats.Connect(s.behind.ClientURL())
	if err != nil {
		s.t.Fatal(err)
	}
	defer nc.Close()
	var last string
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		resp, err := nc.Request(semantics.Subject(semantics.JSStreamInfoPrefix, s.stream), nil, time.Second)
		if err != nil {
			last = err.Error()
			continue
		}
		var info struct {
			State struct {
				LastSeq uint64 `json:"last_seq"`
			} `json:"state"`
			Cluster *struct {
				Leader string `json:"leader"`
			} `json:"cluster"`
		}
		if json.Unmarshal(resp.Data, &info) == nil && info.Cluster != nil && info.Cluster.Leader == "" && info.State.LastSeq == behindHeld {
			return
		}
		last = string(resp.Data)
	}
	s.t.Fatalf("the stream's info was not answered by the replica behind without a leader: %s", last)
}

// restart starts node i again on its config, and closes it at cleanup.
func (s *behindScene) restart(i int) *server.Node {
	s.t.Helper()
	n, err := server.Start(s.ctx, s.cfgs[i])
	if err != nil {
		s.t.Fatalf("restart %s: %v", s.cfgs[i].Name, err)
	}
	s.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	s.nodes[i] = n
	return n
}

// recover starts the former leader's node again, whose log is the longest, and
// resumes the replica's applies: the partition has its leader back, and the
// replica catches up.
func (s *behindScene) recover() {
	s.t.Helper()
	s.restart(s.leader)
	s.replica.ResumeApply()
}
