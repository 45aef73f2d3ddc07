//go:build kafkaclients

// Tests with segmentio/kafka-go, a Go Kafka client independent of franz-go and
// Sarama, against a node's listener. They run with the other client tests:
// `just kafka-clients`, or `go test -tags kafkaclients -run TestClientKafkaGo ./kafka/`.

package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/partitioner"
)

// kafka-go's Writer (murmur2 balancer, acks all, each codec) and a Reader in a
// group that commits what it reads; the SDK reads the records and the committed
// offsets; a second Reader joins the group and the two share the partitions.
func TestClientKafkaGoWriterReader(t *testing.T) {
	n, c := startNode(t)
	const partitions, topic, group = 3, "from-kafka-go", "kafka-go-group"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: partitions})
	ctx := ctxFor(t, 60*time.Second)
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(n.KafkaAddr()),
		Topic:        topic,
		Balancer:     &kafkago.Murmur2Balancer{},
		RequiredAcks: kafkago.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	want := map[string]int32{}
	write := func(codec kafkago.Compression, from, to int) {
		t.Helper()
		w.Compression = codec
		var ms []kafkago.Message
		for j := from; j < to; j++ {
			k := fmt.Sprintf("k%d", j)
			want[k] = partitioner.KafkaPartition([]byte(k), partitions)
			ms = append(ms, kafkago.Message{Key: []byte(k), Value: []byte(fmt.Sprintf("v%d", j)), Headers: []kafkago.Header{{Key: "codec", Value: []byte(codec.String())}}})
		}
		if err := w.WriteMessages(ctx, ms...); err != nil {
			t.Fatalf("write %s: %v", codec, err)
		}
	}
	for i, codec := range []kafkago.Compression{0, kafkago.Gzip, kafkago.Snappy, kafkago.Lz4, kafkago.Zstd} {
		write(codec, i*10, i*10+10)
	}
	for _, r := range pollSDK(t, c, topic, partitions, len(want)) {
		if p := want[string(r.Key)]; p != r.Partition {
			t.Errorf("key %s on partition %d, qxd's murmur2 picks %d", r.Key, r.Partition, p)
		}
	}

	readerCfg := kafkago.ReaderConfig{
		Brokers:           []string{n.KafkaAddr()},
		GroupID:           group,
		Topic:             topic,
		StartOffset:       kafkago.FirstOffset,
		HeartbeatInterval: 200 * time.Millisecond,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  3 * time.Second,
		MaxWait:           200 * time.Millisecond,
		GroupBalancers:    []kafkago.GroupBalancer{kafkago.RangeGroupBalancer{}},
	}
	var mu sync.Mutex
	seen := map[string]int{}
	next := map[int]int64{}
	read := func(name string, r *kafkago.Reader, stop <-chan struct{}) error {
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				select {
				case <-stop:
					return nil
				default:
				}
				return fmt.Errorf("%s fetch: %w", name, err)
			}
			mu.Lock()
			if m.Offset != next[m.Partition] && seen[string(m.Key)] == 0 {
				mu.Unlock()
				return fmt.Errorf("%s read partition %d offset %d, want %d", name, m.Partition, m.Offset, next[m.Partition])
			}
			next[m.Partition] = m.Offset + 1
			seen[string(m.Key)]++
			mu.Unlock()
			if err := r.CommitMessages(ctx, m); err != nil {
				return fmt.Errorf("%s commit: %w", name, err)
			}
		}
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	r1 := kafkago.NewReader(readerCfg)
	stop := make(chan struct{})
	errs := make(chan error, 2)
	go func() { errs <- read("r1", r1, stop) }()
	waitFor(t, "reader 1 to read 50 records", 30*time.Second, func() bool { return count() == 50 })
	hw := map[int32]int64{}
	for p, o := range next {
		hw[int32(p)] = o
	}
	waitCommitted(t, c, group, topic, hw)

	r2 := kafkago.NewReader(readerCfg)
	go func() { errs <- read("r2", r2, stop) }()
	// The join makes r1 rejoin; wait for the group to settle with two members.
	waitFor(t, "the group to hold two members", 30*time.Second, func() bool {
		d, err := c.Admin().DescribeGroup(ctx, group)
		return err == nil && len(d.Members) == 2 && d.State == "Stable"
	})
	write(kafkago.Lz4, 50, 80)
	waitFor(t, "80 records read by the two readers", 30*time.Second, func() bool { return count() == 80 })
	close(stop)
	r1.Close()
	r2.Close()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// kafka-go's Client admin calls: create a topic with configs, describe and alter
// configs, create partitions, list offsets, list and describe groups, fetch a
// group's offsets, delete the group and the topic.
func TestClientKafkaGoAdmin(t *testing.T) {
	n, c := startNode(t)
	ctx := ctxFor(t, 30*time.Second)
	cl := &kafkago.Client{Addr: kafkago.TCP(n.KafkaAddr()), Timeout: 10 * time.Second, Transport: &kafkago.Transport{}}
	const topic, group = "kafka-go-admin", "kafka-go-admin-group"

	ct, err := cl.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{
		Topic: topic, NumPartitions: 2, ReplicationFactor: 1,
		ConfigEntries: []kafkago.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "3600000"}},
	}}})
	if err != nil || ct.Errors[topic] != nil {
		t.Fatalf("create topic: %v %v", err, ct)
	}
	configValue := func(name string) string {
		t.Helper()
		dc, err := cl.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{Resources: []kafkago.DescribeConfigRequestResource{{
			ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{name},
		}}})
		if err != nil || len(dc.Resources) != 1 || dc.Resources[0].Error != nil {
			t.Fatalf("describe configs: %v %+v", err, dc)
		}
		for _, e := range dc.Resources[0].ConfigEntries {
			if e.ConfigName == name {
				return e.ConfigValue
			}
		}
		t.Fatalf("describe configs: no %s in %+v", name, dc.Resources[0])
		return ""
	}
	if got := configValue("retention.ms"); got != "3600000" {
		t.Errorf("retention.ms %q, want 3600000", got)
	}
	ac, err := cl.AlterConfigs(ctx, &kafkago.AlterConfigsRequest{Resources: []kafkago.AlterConfigRequestResource{{
		ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafkago.AlterConfigRequestConfig{{Name: "retention.ms", Value: "7200000"}},
	}}})
	if err != nil {
		t.Fatalf("alter configs: %v", err)
	}
	for r, err := range ac.Errors {
		if err != nil {
			t.Fatalf("alter configs %v: %v", r, err)
		}
	}
	if got := configValue("retention.ms"); got != "7200000" {
		t.Errorf("after alter retention.ms %q, want 7200000", got)
	}
	iac, err := cl.IncrementalAlterConfigs(ctx, &kafkago.IncrementalAlterConfigsRequest{Resources: []kafkago.IncrementalAlterConfigsRequestResource{{
		ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafkago.IncrementalAlterConfigsRequestConfig{{Name: "retention.ms", Value: "86400000", ConfigOperation: kafkago.ConfigOperationSet}},
	}}})
	if err != nil {
		t.Fatalf("incremental alter configs: %v", err)
	}
	for _, r := range iac.Resources {
		if r.Error != nil {
			t.Fatalf("incremental alter configs %s: %v", r.ResourceName, r.Error)
		}
	}
	if got := configValue("retention.ms"); got != "86400000" {
		t.Errorf("after incremental alter retention.ms %q, want 86400000", got)
	}
	cp, err := cl.CreatePartitions(ctx, &kafkago.CreatePartitionsRequest{Topics: []kafkago.TopicPartitionsConfig{{Name: topic, Count: 3}}})
	if err != nil || cp.Errors[topic] != nil {
		t.Fatalf("create partitions: %v %v", err, cp)
	}
	// kafka-go's Transport answers Metadata from its cache (MetadataTTL, 6 s by
	// default): a new one asks the node.
	fresh := &kafkago.Client{Addr: cl.Addr, Transport: &kafkago.Transport{}}
	md, err := fresh.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 3 {
		t.Fatalf("metadata after create partitions: %v %+v", err, md)
	}

	w := &kafkago.Writer{Addr: cl.Addr, Transport: &kafkago.Transport{}, Topic: topic, Balancer: &kafkago.Murmur2Balancer{}, RequiredAcks: kafkago.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	var ms []kafkago.Message
	for j := range 20 {
		ms = append(ms, kafkago.Message{Key: []byte(fmt.Sprintf("k%d", j)), Value: []byte("v")})
	}
	if err := w.WriteMessages(ctx, ms...); err != nil {
		t.Fatal(err)
	}
	lo, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{
		topic: {kafkago.FirstOffsetOf(0), kafkago.LastOffsetOf(0), kafkago.FirstOffsetOf(1), kafkago.LastOffsetOf(1), kafkago.FirstOffsetOf(2), kafkago.LastOffsetOf(2)},
	}})
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	ends := map[int32]int64{}
	var total int64
	for _, po := range lo.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("list offsets partition %d: %v", po.Partition, po.Error)
		}
		if po.LastOffset >= 0 {
			ends[int32(po.Partition)] = po.LastOffset
		}
	}
	for p := range int32(3) {
		total += ends[p]
	}
	if total != 20 {
		t.Errorf("list offsets: ends %v sum to %d, want 20", ends, total)
	}

	oc, err := cl.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafkago.OffsetCommit{
		topic: {{Partition: 0, Offset: ends[0], Metadata: "m"}},
	}})
	if err != nil {
		t.Fatalf("offset commit: %v", err)
	}
	for _, p := range oc.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("offset commit partition %d: %v", p.Partition, p.Error)
		}
	}
	waitCommitted(t, c, group, topic, map[int32]int64{0: ends[0]})
	of, err := cl.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0}}})
	if err != nil || of.Error != nil || len(of.Topics[topic]) != 1 || of.Topics[topic][0].CommittedOffset != ends[0] || of.Topics[topic][0].Metadata != "m" {
		t.Fatalf("offset fetch: %v %+v, want offset %d", err, of, ends[0])
	}
	lg, err := cl.ListGroups(ctx, &kafkago.ListGroupsRequest{})
	if err != nil || lg.Error != nil {
		t.Fatalf("list groups: %v %+v", err, lg)
	}
	found := false
	for _, g := range lg.Groups {
		found = found || g.GroupID == group
	}
	if !found {
		t.Errorf("list groups %+v has no %s", lg.Groups, group)
	}
	dg, err := cl.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(dg.Groups) != 1 || dg.Groups[0].Error != nil || dg.Groups[0].GroupID != group {
		t.Fatalf("describe groups: %v %+v", err, dg)
	}
	dgr, err := cl.DeleteGroups(ctx, &kafkago.DeleteGroupsRequest{GroupIDs: []string{group}})
	if err != nil || dgr.Errors[group] != nil {
		t.Fatalf("delete groups: %v %+v", err, dgr)
	}
	dt, err := cl.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil || dt.Errors[topic] != nil {
		t.Fatalf("delete topics: %v %+v", err, dt)
	}
	if _, err := c.Admin().DescribeTopic(ctx, topic); err == nil {
		t.Errorf("the SDK still describes %s after kafka-go deleted it", topic)
	}
}

// kafka-go's Conn, the low-level API many of its users dial: create a topic, read
// its partitions and the controller, write to the leader, seek and read batches,
// read offsets (first, last, by time), delete the topic.
func TestClientKafkaGoConn(t *testing.T) {
	n, c := startNode(t)
	const topic = "kafka-go-conn"
	conn, err := kafkago.Dial("tcp", n.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := conn.CreateTopics(kafkago.TopicConfig{Topic: topic, NumPartitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	if _, err := conn.Controller(); err != nil {
		t.Errorf("controller: %v", err)
	}
	var parts []kafkago.Partition
	waitFor(t, "the topic's 2 partitions", 10*time.Second, func() bool {
		parts, err = conn.ReadPartitions(topic)
		return err == nil && len(parts) == 2
	})
	before := time.Now().Add(-time.Second)
	leader, err := kafkago.DialLeader(context.Background(), "tcp", n.KafkaAddr(), topic, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Close()
	leader.SetDeadline(time.Now().Add(30 * time.Second))
	var ms []kafkago.Message
	for j := range 10 {
		ms = append(ms, kafkago.Message{Key: []byte(fmt.Sprintf("k%d", j)), Value: []byte(fmt.Sprintf("v%d", j))})
	}
	if _, err := leader.WriteMessages(ms[:5]...); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, err := leader.WriteCompressedMessages(kafkago.Snappy.Codec(), ms[5:]...); err != nil {
		t.Fatalf("write snappy: %v", err)
	}
	first, last, err := leader.ReadOffsets()
	if err != nil || first != 0 || last != 10 {
		t.Errorf("offsets %d..%d (%v), want 0..10", first, last, err)
	}
	if at, err := leader.ReadOffset(before); err != nil || at != 0 {
		t.Errorf("offset at %v: %d (%v), want 0", before, at, err)
	}
	if _, err := leader.Seek(3, kafkago.SeekAbsolute); err != nil {
		t.Fatal(err)
	}
	b := leader.ReadBatch(1, 1<<20)
	var got []string
	for len(got) < 7 {
		m, err := b.ReadMessage()
		if err != nil {
			break
		}
		if m.Offset != int64(3+len(got)) {
			t.Errorf("record %s at offset %d, want %d", m.Key, m.Offset, 3+len(got))
		}
		got = append(got, string(m.Value))
	}
	b.Close()
	for len(got) < 7 {
		b := leader.ReadBatch(1, 1<<20)
		for {
			m, err := b.ReadMessage()
			if err != nil {
				break
			}
			got = append(got, string(m.Value))
		}
		if err := b.Close(); err != nil {
			t.Fatalf("read batch: %v", err)
		}
	}
	if fmt.Sprint(got) != "[v3 v4 v5 v6 v7 v8 v9]" {
		t.Errorf("read from offset 3: %v", got)
	}
	if err := conn.DeleteTopics(topic); err != nil {
		t.Fatalf("delete topic: %v", err)
	}
	if _, err := c.Admin().DescribeTopic(ctxFor(t, 5*time.Second), topic); err == nil {
		t.Errorf("the SDK still describes %s after kafka-go deleted it", topic)
	}
}
