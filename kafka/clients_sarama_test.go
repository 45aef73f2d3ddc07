//go:build kafkaclients

// Tests with Sarama (github.com/IBM/sarama), a Go Kafka client independent of
// franz-go, against a node's listener, at several pinned Config.Versions. They
// run with the other client tests: `just kafka-clients`, or
// `go test -tags kafkaclients -run TestClientSarama ./kafka/`.

package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/partitioner"
	"github.com/qxd-io/qxd/server"
)

// saramaVersions are the Config.Version pins the Sarama tests run at: the oldest
// qxd serves (0.11, the first with record batches), 1.0, 2.1, Sarama's default
// and the newest it knows. Each pin makes Sarama use that release's version of
// every API.
var saramaVersions = []sarama.KafkaVersion{
	sarama.V0_11_0_0, sarama.V1_0_0_0, sarama.V2_1_0_0, sarama.DefaultVersion, sarama.V3_6_0_0, sarama.MaxVersion,
}

func saramaConfig(v sarama.KafkaVersion) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = v
	cfg.ClientID = "qxd-sarama-test"
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewMurmur2Partitioner
	cfg.Producer.Retry.Backoff = 50 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	return cfg
}

func saramaClient(t *testing.T, n *server.Node, cfg *sarama.Config) sarama.Client {
	t.Helper()
	cl, err := sarama.NewClient([]string{n.KafkaAddr()}, cfg)
	if err != nil {
		t.Fatalf("sarama %s: %v", cfg.Version, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// saramaCodecs are the codecs a version may use: zstd came with Kafka 2.1.
func saramaCodecs(v sarama.KafkaVersion) []sarama.CompressionCodec {
	cs := []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4}
	if v.IsAtLeast(sarama.V2_1_0_0) {
		cs = append(cs, sarama.CompressionZSTD)
	}
	return cs
}

// Sarama at each pinned version: a sync producer with acks=all and each codec the
// version allows writes keyed records to the partition qxd's murmur2 picks, an
// idempotent producer where Sarama supports it, and a partition consumer reads
// every partition from the oldest offset densely; the SDK reads the same records.
func TestClientSaramaProduceConsume(t *testing.T) {
	n, c := startNode(t)
	const partitions = 3
	for i, v := range saramaVersions {
		t.Run(v.String(), func(t *testing.T) {
			topic := fmt.Sprintf("sarama-pc-%d", i)
			qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: partitions})
			var want []rec
			produce := func(cfg *sarama.Config, tag string) {
				cl := saramaClient(t, n, cfg)
				p, err := sarama.NewSyncProducerFromClient(cl)
				if err != nil {
					t.Fatalf("%s producer: %v", tag, err)
				}
				defer p.Close()
				for j := range 12 {
					k, val := fmt.Sprintf("%s-k%d", tag, j), fmt.Sprintf("%s-v%d", tag, j)
					part, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(k), Value: sarama.StringEncoder(val),
						Headers: []sarama.RecordHeader{{Key: []byte("tag"), Value: []byte(tag)}}})
					if err != nil {
						t.Fatalf("%s send %s: %v", tag, k, err)
					}
					if wantP := partitioner.KafkaPartition([]byte(k), partitions); part != wantP {
						t.Errorf("%s key %s went to partition %d, qxd's murmur2 picks %d", tag, k, part, wantP)
					}
					want = append(want, rec{k, val, part, off})
				}
			}
			for _, codec := range saramaCodecs(v) {
				cfg := saramaConfig(v)
				cfg.Producer.Compression = codec
				produce(cfg, codec.String())
			}
			if v.IsAtLeast(sarama.V0_11_0_0) {
				cfg := saramaConfig(v)
				cfg.Producer.Idempotent = true
				cfg.Net.MaxOpenRequests = 1
				produce(cfg, "idempotent")
			}
			checkDense(t, want)

			// A partition consumer of each partition from the oldest offset.
			cl := saramaClient(t, n, saramaConfig(v))
			cons, err := sarama.NewConsumerFromClient(cl)
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			var got []rec
			for p := range int32(partitions) {
				hw, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
				if err != nil {
					t.Fatal(err)
				}
				if hw == 0 {
					continue
				}
				pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
				if err != nil {
					t.Fatalf("consume partition %d: %v", p, err)
				}
				for {
					select {
					case m := <-pc.Messages():
						got = append(got, rec{string(m.Key), string(m.Value), m.Partition, m.Offset})
						if len(m.Headers) != 1 || string(m.Headers[0].Key) != "tag" || !strings.HasPrefix(string(m.Key), string(m.Headers[0].Value)+"-") {
							t.Errorf("record %s has headers %v, want its tag", m.Key, m.Headers)
						}
					case err := <-pc.Errors():
						t.Fatalf("partition %d: %v", p, err)
					case <-time.After(20 * time.Second):
						t.Fatalf("partition %d: timed out at %d records, high watermark %d", p, len(got), hw)
					}
					if got[len(got)-1].offset == hw-1 {
						break
					}
				}
				pc.Close()
			}
			sortRecs(want)
			sortRecs(got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("sarama consumed\n%v\nproduced\n%v", got, want)
			}
			var sdk []rec
			for _, r := range pollSDK(t, c, topic, partitions, len(want)) {
				sdk = append(sdk, rec{string(r.Key), string(r.Value), r.Partition, r.Offset})
			}
			sortRecs(sdk)
			if fmt.Sprint(sdk) != fmt.Sprint(want) {
				t.Errorf("SDK read\n%v\nsarama produced\n%v", sdk, want)
			}
		})
	}
}

func sortRecs(rs []rec) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].partition != rs[j].partition {
			return rs[i].partition < rs[j].partition
		}
		return rs[i].offset < rs[j].offset
	})
}

// checkDense fails unless each partition's offsets in rs are 0, 1, 2, … .
func checkDense(t *testing.T, rs []rec) {
	t.Helper()
	cp := append([]rec(nil), rs...)
	sortRecs(cp)
	next := map[int32]int64{}
	for _, r := range cp {
		if r.offset != next[r.partition] {
			t.Fatalf("partition %d: offset %d, want %d (offsets not dense): %v", r.partition, r.offset, next[r.partition], cp)
		}
		next[r.partition]++
	}
}

// groupHandler records what a Sarama group member is given and consumes, marking
// each message so the session commits it.
type groupHandler struct {
	name     string
	mu       sync.Mutex
	claims   [][]int32 // the partitions of each session, in order
	consumed map[string]rec
}

func (h *groupHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ps []int32
	for _, p := range s.Claims() {
		ps = append(ps, p...)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	h.claims = append(h.claims, ps)
	return nil
}

func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, cl sarama.ConsumerGroupClaim) error {
	for m := range cl.Messages() {
		h.mu.Lock()
		h.consumed[string(m.Key)] = rec{string(m.Key), string(m.Value), m.Partition, m.Offset}
		h.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func (h *groupHandler) lastClaims() []int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.claims) == 0 {
		return nil
	}
	return h.claims[len(h.claims)-1]
}

func (h *groupHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.consumed)
}

// runGroup runs a Sarama group member until the test ends.
func runGroup(t *testing.T, n *server.Node, cfg *sarama.Config, group, topic string, h *groupHandler) {
	t.Helper()
	g, err := sarama.NewConsumerGroup([]string{n.KafkaAddr()}, group, cfg)
	if err != nil {
		t.Fatalf("%s: %v", h.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{topic}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
				t.Logf("%s: consume: %v", h.name, err)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	go func() {
		for err := range g.Errors() {
			t.Logf("%s: %v", h.name, err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		g.Close()
	})
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Sarama consumer groups with each balance strategy, at an old and a new version:
// one member consumes and commits everything, a second member joins and the group
// rebalances the partitions between them, and the SDK reads the committed offsets.
func TestClientSaramaGroup(t *testing.T) {
	n, c := startNode(t)
	const partitions = 4
	strategies := []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange(), sarama.NewBalanceStrategyRoundRobin(), sarama.NewBalanceStrategySticky()}
	i := 0
	for _, v := range []sarama.KafkaVersion{sarama.V0_11_0_0, sarama.V2_1_0_0, sarama.MaxVersion} {
		for _, st := range strategies {
			i++
			topic, group := fmt.Sprintf("sarama-g-%d", i), fmt.Sprintf("sarama-group-%d", i)
			t.Run(v.String()+"/"+st.Name(), func(t *testing.T) {
				qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: partitions})
				cl := saramaClient(t, n, saramaConfig(v))
				p, err := sarama.NewSyncProducerFromClient(cl)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				send := func(from, to int) {
					for j := from; j < to; j++ {
						if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("k%d", j)), Value: sarama.StringEncoder("v")}); err != nil {
							t.Fatal(err)
						}
					}
				}
				send(0, 40)
				cfg := saramaConfig(v)
				cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{st}
				cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
				cfg.Consumer.Group.Heartbeat.Interval = 200 * time.Millisecond
				cfg.Consumer.Group.Rebalance.Timeout = 5 * time.Second
				a := &groupHandler{name: "a", consumed: map[string]rec{}}
				runGroup(t, n, cfg, group, topic, a)
				waitFor(t, "member a to consume 40 records", 20*time.Second, func() bool { return a.count() == 40 })
				if got := a.lastClaims(); len(got) != partitions {
					t.Fatalf("lone member a claims %v, want all %d partitions", got, partitions)
				}
				want := map[int32]int64{}
				for p := range int32(partitions) {
					hw, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
					if err != nil {
						t.Fatal(err)
					}
					want[p] = hw
				}
				waitCommitted(t, c, group, topic, want)

				b := &groupHandler{name: "b", consumed: map[string]rec{}}
				runGroup(t, n, cfg, group, topic, b)
				waitFor(t, "a rebalance giving both members partitions", 20*time.Second, func() bool {
					ca, cb := a.lastClaims(), b.lastClaims()
					return len(ca) > 0 && len(cb) > 0 && len(ca)+len(cb) == partitions
				})
				ca, cb := a.lastClaims(), b.lastClaims()
				for _, x := range ca {
					for _, y := range cb {
						if x == y {
							t.Fatalf("partition %d claimed by both members: a %v, b %v", x, ca, cb)
						}
					}
				}
				// Records written after the rebalance reach the member owning their partition.
				send(40, 80)
				waitFor(t, "80 records consumed", 20*time.Second, func() bool {
					a.mu.Lock()
					b.mu.Lock()
					defer a.mu.Unlock()
					defer b.mu.Unlock()
					all := map[string]bool{}
					for k := range a.consumed {
						all[k] = true
					}
					for k := range b.consumed {
						all[k] = true
					}
					return len(all) == 80
				})
				for p := range int32(partitions) {
					hw, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
					if err != nil {
						t.Fatal(err)
					}
					want[p] = hw
				}
				waitCommitted(t, c, group, topic, want)
			})
		}
	}
}

// Sarama's ClusterAdmin at each pinned version: create a topic with configs,
// describe and alter them, add partitions, delete records, list and describe
// groups, read a group's offsets, delete the topic.
func TestClientSaramaAdmin(t *testing.T) {
	n, c := startNode(t)
	for i, v := range saramaVersions {
		t.Run(v.String(), func(t *testing.T) {
			topic, group := fmt.Sprintf("sarama-admin-%d", i), fmt.Sprintf("sarama-admin-group-%d", i)
			cl := saramaClient(t, n, saramaConfig(v))
			adm, err := sarama.NewClusterAdminFromClient(cl)
			if err != nil {
				t.Fatal(err)
			}
			retention := "3600000"
			if err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1, ConfigEntries: map[string]*string{"retention.ms": &retention}}, false); err != nil {
				t.Fatalf("create topic: %v", err)
			}
			configValue := func(name string) string {
				t.Helper()
				es, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
				if err != nil {
					t.Fatalf("describe config: %v", err)
				}
				for _, e := range es {
					if e.Name == name {
						return e.Value
					}
				}
				t.Fatalf("describe config of %s has no %s: %v", topic, name, es)
				return ""
			}
			if got := configValue("retention.ms"); got != retention {
				t.Errorf("retention.ms %q, want %q", got, retention)
			}
			longer := "7200000"
			if err := adm.AlterConfig(sarama.TopicResource, topic, map[string]*string{"retention.ms": &longer}, false); err != nil {
				t.Fatalf("alter config: %v", err)
			}
			if got := configValue("retention.ms"); got != longer {
				t.Errorf("after alter retention.ms %q, want %q", got, longer)
			}
			if v.IsAtLeast(sarama.V2_3_0_0) {
				day := "86400000"
				if err := adm.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &day}}, false); err != nil {
					t.Fatalf("incremental alter config: %v", err)
				}
				if got := configValue("retention.ms"); got != day {
					t.Errorf("after incremental alter retention.ms %q, want %q", got, day)
				}
			}
			// Sarama refuses, before sending, an API newer than the pinned version:
			// CreatePartitions came with 1.0, DeleteGroups with 1.1.
			if v.IsAtLeast(sarama.V1_0_0_0) {
				if err := adm.CreatePartitions(topic, 3, nil, false); err != nil {
					t.Fatalf("create partitions: %v", err)
				}
				info, err := c.Admin().DescribeTopic(ctxFor(t, 10*time.Second), topic)
				if err != nil {
					t.Fatal(err)
				}
				if len(info.Partitions) != 3 {
					t.Errorf("SDK sees %d partitions after CreatePartitions, want 3", len(info.Partitions))
				}
			}

			// Records on partition 0, then delete the first 3 of them.
			pcfg := saramaConfig(v)
			pcfg.Producer.Partitioner = sarama.NewManualPartitioner
			if err := cl.RefreshMetadata(topic); err != nil {
				t.Fatal(err)
			}
			p, err := sarama.NewSyncProducerFromClient(saramaClient(t, n, pcfg))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for j := range 5 {
				if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder(fmt.Sprint(j))}); err != nil {
					t.Fatal(err)
				}
			}
			if err := adm.DeleteRecords(topic, map[int32]int64{0: 3}); err != nil {
				t.Fatalf("delete records: %v", err)
			}
			if lso, err := cl.GetOffset(topic, 0, sarama.OffsetOldest); err != nil || lso != 3 {
				t.Errorf("log start offset after DeleteRecords %d (%v), want 3", lso, err)
			}

			// A group with a committed offset.
			om, err := sarama.NewOffsetManagerFromClient(group, cl)
			if err != nil {
				t.Fatal(err)
			}
			pom, err := om.ManagePartition(topic, 0)
			if err != nil {
				t.Fatal(err)
			}
			pom.MarkOffset(4, "meta")
			om.Commit()
			pom.Close()
			om.Close()
			waitCommitted(t, c, group, topic, map[int32]int64{0: 4})
			offs, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
			if err != nil {
				t.Fatalf("list group offsets: %v", err)
			}
			if b := offs.GetBlock(topic, 0); b == nil || b.Offset != 4 {
				t.Errorf("ListConsumerGroupOffsets %+v, want offset 4", b)
			}
			// An admin's offset change, and a time lookup of the partition.
			oc, err := adm.AlterConsumerGroupOffsets(group, map[string]map[int32]sarama.OffsetAndMetadata{topic: {0: {Offset: 3, Metadata: "moved", LeaderEpoch: -1}, 1: {Offset: 0, LeaderEpoch: -1}}}, nil)
			if err != nil || oc.Errors[topic][0] != sarama.ErrNoError || oc.Errors[topic][1] != sarama.ErrNoError {
				t.Fatalf("alter group offsets: %v %+v", err, oc)
			}
			waitCommitted(t, c, group, topic, map[int32]int64{0: 3, 1: 0})
			if at, err := cl.GetOffset(topic, 0, time.Now().Add(-time.Hour).UnixMilli()); err != nil || at != 3 {
				t.Errorf("offset of an hour ago %d (%v), want the log start 3", at, err)
			}
			if v.IsAtLeast(sarama.V2_4_0_0) {
				if err := adm.DeleteConsumerGroupOffset(group, topic, 0); err != nil {
					t.Errorf("delete group offset: %v", err)
				}
				waitCommitted(t, c, group, topic, map[int32]int64{1: 0})
			}
			groups, err := adm.ListConsumerGroups()
			if err != nil {
				t.Fatalf("list groups: %v", err)
			}
			if _, ok := groups[group]; !ok {
				t.Errorf("ListConsumerGroups %v has no %s", groups, group)
			}
			ds, err := adm.DescribeConsumerGroups([]string{group})
			if err != nil || len(ds) != 1 || ds[0].GroupId != group || ds[0].Err != sarama.ErrNoError {
				t.Errorf("DescribeConsumerGroups %+v, %v", ds, err)
			}
			if _, _, err := adm.DescribeCluster(); err != nil {
				t.Errorf("describe cluster: %v", err)
			}
			if v.IsAtLeast(sarama.V1_1_0_0) {
				if err := adm.DeleteConsumerGroup(group); err != nil {
					t.Errorf("delete group: %v", err)
				}
			}
			if err := adm.DeleteTopic(topic); err != nil {
				t.Fatalf("delete topic: %v", err)
			}
			waitFor(t, "the topic to go", 10*time.Second, func() bool {
				ts, err := adm.ListTopics()
				_, ok := ts[topic]
				return err == nil && !ok
			})
		})
	}
}

// Sarama pinned to 0.10.2, older than any version qxd serves, speaks Produce v2
// with the old message-set format and Fetch v3: qxd advertises Produce from v3
// and Fetch from v4 only, and answers those versions with a clear code rather
// than closing the connection. The producer fails with
// ErrUnsupportedForMessageFormat and stores nothing; the partition consumer
// reports ErrUnsupportedVersion and reads nothing.
func TestClientSaramaTooOld(t *testing.T) {
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "sarama-old", qxd.TopicConfig{Partitions: 1})
	current := saramaClient(t, n, saramaConfig(sarama.DefaultVersion))
	sp, err := sarama.NewSyncProducerFromClient(current)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if _, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: "sarama-old", Value: sarama.StringEncoder("new")}); err != nil {
		t.Fatalf("produce at %s: %v", sarama.DefaultVersion, err)
	}
	end := func() int64 {
		t.Helper()
		off, err := current.GetOffset("sarama-old", 0, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		return off
	}
	if got := end(); got != 1 {
		t.Fatalf("partition end %d after one record, want 1", got)
	}

	cfg := saramaConfig(sarama.V0_10_2_0)
	cfg.Producer.Retry.Max = 0
	cfg.Net.ReadTimeout = 5 * time.Second
	p, err := sarama.NewSyncProducer([]string{n.KafkaAddr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: "sarama-old", Value: sarama.StringEncoder("v")})
	t.Logf("produce at 0.10.2: %v", err)
	if !errors.Is(err, sarama.ErrUnsupportedForMessageFormat) {
		t.Errorf("Sarama pinned to 0.10.2 produced with error %v, want %v: qxd serves Produce from v3", err, sarama.ErrUnsupportedForMessageFormat)
	}
	if got := end(); got != 1 {
		t.Errorf("partition end %d after the refused produce, want 1", got)
	}

	cons, err := sarama.NewConsumer([]string{n.KafkaAddr()}, saramaConfig(sarama.V0_10_2_0))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition("sarama-old", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("consume at 0.10.2: %v", err)
	}
	defer pc.Close()
	select {
	case err := <-pc.Errors():
		t.Logf("consume at 0.10.2: %v", err)
		if !errors.Is(err, sarama.ErrUnsupportedVersion) {
			t.Errorf("Sarama pinned to 0.10.2 consumed with error %v, want %v: qxd serves Fetch from v4", err, sarama.ErrUnsupportedVersion)
		}
	case m := <-pc.Messages():
		t.Errorf("Sarama pinned to 0.10.2 read %q at offset %d, want an error", m.Value, m.Offset)
	case <-time.After(20 * time.Second):
		t.Error("Sarama pinned to 0.10.2 consumed nothing and saw no error in 20s")
	}
}

// In a 3-node cluster Sarama bootstraps from one node, sees the three brokers,
// produces to each partition's leader with acks=all and reads everything back
// from the leaders, at its oldest and its default version.
func TestClientSaramaCluster(t *testing.T) {
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].KafkaListen = "127.0.0.1:0"
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	c := qxdtest.Connect(t, nodes[0])
	const partitions = 6
	for i, v := range []sarama.KafkaVersion{sarama.V0_11_0_0, sarama.DefaultVersion} {
		t.Run(v.String(), func(t *testing.T) {
			topic := fmt.Sprintf("sarama-spread-%d", i)
			qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: partitions, Replicas: 3})
			cfg := saramaConfig(v)
			cfg.Producer.Idempotent = true
			cfg.Net.MaxOpenRequests = 1
			cl := saramaClient(t, nodes[1], cfg)
			if got := len(cl.Brokers()); got != 3 {
				t.Errorf("sarama sees %d brokers, want 3", got)
			}
			p, err := sarama.NewSyncProducerFromClient(cl)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			var want []rec
			for j := range 60 {
				k := fmt.Sprintf("k%d", j)
				part, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(k), Value: sarama.StringEncoder("v")})
				if err != nil {
					t.Fatalf("send %s: %v", k, err)
				}
				if wantP := partitioner.KafkaPartition([]byte(k), partitions); part != wantP {
					t.Errorf("key %s went to partition %d, qxd's murmur2 picks %d", k, part, wantP)
				}
				want = append(want, rec{k, "v", part, off})
			}
			checkDense(t, want)
			var got []rec
			for _, r := range pollSDK(t, c, topic, partitions, len(want)) {
				got = append(got, rec{string(r.Key), string(r.Value), r.Partition, r.Offset})
			}
			sortRecs(want)
			sortRecs(got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("SDK read\n%v\nsarama produced\n%v", got, want)
			}
			cons, err := sarama.NewConsumerFromClient(cl)
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			leaders := map[int32]bool{}
			n := 0
			for p := range int32(partitions) {
				if b, err := cl.Leader(topic, p); err == nil {
					leaders[b.ID()] = true
				}
				hw, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
				if err != nil || hw == 0 {
					continue
				}
				pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
				if err != nil {
					t.Fatal(err)
				}
				for off := int64(0); off < hw; off++ {
					select {
					case m := <-pc.Messages():
						if m.Offset != off {
							t.Fatalf("partition %d: offset %d, want %d", p, m.Offset, off)
						}
						n++
					case err := <-pc.Errors():
						t.Fatalf("partition %d: %v", p, err)
					case <-time.After(20 * time.Second):
						t.Fatalf("partition %d: timed out at offset %d of %d", p, off, hw)
					}
				}
				pc.Close()
			}
			if n != len(want) {
				t.Errorf("consumed %d records, want %d", n, len(want))
			}
			t.Logf("partition leaders on %d brokers", len(leaders))
		})
	}
}

// Sarama's transactional producer: a committed transaction, an aborted one and
// one that also commits a group's offset; a read_committed partition consumer
// sees only the committed records, and the SDK sees the transaction's offset.
func TestClientSaramaTransactions(t *testing.T) {
	n, c := startNode(t)
	for i, v := range []sarama.KafkaVersion{sarama.V0_11_0_0, sarama.DefaultVersion, sarama.MaxVersion} {
		t.Run(v.String(), func(t *testing.T) {
			topic, group := fmt.Sprintf("sarama-txn-%d", i), fmt.Sprintf("sarama-txn-group-%d", i)
			qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
			cfg := saramaConfig(v)
			cfg.Producer.Idempotent = true
			cfg.Producer.Transaction.ID = fmt.Sprintf("sarama-txn-%d", i)
			cfg.Net.MaxOpenRequests = 1
			p, err := sarama.NewSyncProducerFromClient(saramaClient(t, n, cfg))
			if err != nil {
				t.Fatalf("transactional producer: %v", err)
			}
			defer p.Close()
			txn := func(values []string, offset int64, commit bool) {
				t.Helper()
				if err := p.BeginTxn(); err != nil {
					t.Fatalf("begin: %v", err)
				}
				for _, val := range values {
					if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(val)}); err != nil {
						t.Fatalf("send %s: %v", val, err)
					}
				}
				if offset >= 0 {
					if err := p.AddOffsetsToTxn(map[string][]*sarama.PartitionOffsetMetadata{topic: {{Partition: 0, Offset: offset, LeaderEpoch: -1}}}, group); err != nil {
						t.Fatalf("add offsets: %v", err)
					}
				}
				if commit {
					err = p.CommitTxn()
				} else {
					err = p.AbortTxn()
				}
				if err != nil {
					t.Fatalf("end (commit %v): %v", commit, err)
				}
			}
			txn([]string{"c1", "c2", "c3"}, -1, true)
			txn([]string{"a1", "a2"}, -1, false)
			txn([]string{"c4"}, 2, true)
			waitCommitted(t, c, group, topic, map[int32]int64{0: 2})

			ccfg := saramaConfig(v)
			ccfg.Consumer.IsolationLevel = sarama.ReadCommitted
			cl := saramaClient(t, n, ccfg)
			hw, err := cl.GetOffset(topic, 0, sarama.OffsetNewest)
			if err != nil {
				t.Fatal(err)
			}
			cons, err := sarama.NewConsumerFromClient(cl)
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			var got []string
			for len(got) < 4 {
				select {
				case m := <-pc.Messages():
					got = append(got, string(m.Value))
				case err := <-pc.Errors():
					t.Fatal(err)
				case <-time.After(20 * time.Second):
					t.Fatalf("read_committed read %v, want c1..c4 (high watermark %d)", got, hw)
				}
			}
			select {
			case m := <-pc.Messages():
				got = append(got, string(m.Value))
			case <-time.After(300 * time.Millisecond):
			}
			if fmt.Sprint(got) != "[c1 c2 c3 c4]" {
				t.Errorf("read_committed read %v, want [c1 c2 c3 c4]", got)
			}
		})
	}
}
