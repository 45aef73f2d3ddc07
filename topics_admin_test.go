package qxd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// streamConfigs returns the stream config of each partition of topic.
func streamConfigs(t *testing.T, ctx context.Context, js jetstream.JetStream, topic string, partitions int32) []jetstream.StreamConfig {
	t.Helper()
	var out []jetstream.StreamConfig
	for p := range partitions {
		s, err := js.Stream(ctx, semantics.StreamName(topic, p))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s.CachedInfo().Config)
	}
	return out
}

// TestAlterTopicConfig: settings change on every partition's stream and in the
// topic's record, by qxd's or Kafka's names; describe tells set from default; a
// retried change is the same change; bad keys and values change nothing.
func TestAlterTopicConfig(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "alt", qxd.TopicConfig{Partitions: 3, RetentionBytes: 1 << 30})
	adm := c.Admin()

	info, err := adm.Topic(ctx, "alt")
	if err != nil {
		t.Fatal(err)
	}
	wantSources := func(info qxd.TopicInfo, want map[string]semantics.ConfigSource) {
		t.Helper()
		for k, w := range want {
			if got := info.ConfigSource(k); got != w {
				t.Errorf("source of %s = %s, want %s", k, got, w)
			}
		}
	}
	wantSources(info, map[string]semantics.ConfigSource{
		semantics.ConfigRetention: semantics.ConfigSourceDefault, semantics.ConfigRetentionBytes: semantics.ConfigSourceSet,
		semantics.ConfigMaxRecordBytes: semantics.ConfigSourceDefault,
	})

	set := map[string]string{"retention": "3d", "retention.bytes": "10MiB", "max.message.bytes": "2MiB"}
	for range 2 { // the second call is a retry: the same result
		info, err = adm.AlterTopicConfig(ctx, "alt", set)
		if err != nil {
			t.Fatal(err)
		}
		if c := info.Config; c.Retention != 72*time.Hour || c.RetentionBytes != 10<<20 || c.MaxMessageBytes != 2<<20 || c.Partitions != 3 {
			t.Fatalf("config after alter: %+v", c)
		}
		for p, sc := range streamConfigs(t, ctx, js, "alt", 3) {
			if sc.MaxAge != 72*time.Hour || sc.MaxBytes != 10<<20 || sc.MaxMsgSize != 2<<20+4096 {
				t.Fatalf("partition %d stream: max age %v, max bytes %d, max msg size %d", p, sc.MaxAge, sc.MaxBytes, sc.MaxMsgSize)
			}
		}
	}
	wantSources(info, map[string]semantics.ConfigSource{
		semantics.ConfigRetention: semantics.ConfigSourceSet, semantics.ConfigMaxRecordBytes: semantics.ConfigSourceSet,
	})
	// The new limit applies: a record over the old 1 MiB is stored.
	big := &qxd.Record{Topic: "alt", Partition: 1, Value: bytes.Repeat([]byte("x"), 1500<<10)}
	prod, err := c.NewProducer(qxd.RecordPartition())
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(ctx)
	if err := prod.ProduceSync(ctx, big); err != nil {
		t.Fatalf("produce 1.5 MiB after raising max-record-bytes to 2 MiB: %v", err)
	}

	// Back to the defaults, in Kafka's name for one.
	info, err = adm.AlterTopicConfig(ctx, "alt", map[string]string{"retention.ms": "3600000"}, "max-record-bytes")
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.Retention != time.Hour || c.MaxMessageBytes != semantics.DefaultMaxMessageBytes {
		t.Fatalf("config: %+v", c)
	}
	wantSources(info, map[string]semantics.ConfigSource{semantics.ConfigMaxRecordBytes: semantics.ConfigSourceDefault})
	for p, sc := range streamConfigs(t, ctx, js, "alt", 3) {
		if sc.MaxAge != time.Hour || sc.MaxMsgSize != semantics.DefaultMaxMessageBytes+4096 {
			t.Fatalf("partition %d stream: max age %v, max msg size %d", p, sc.MaxAge, sc.MaxMsgSize)
		}
	}
	before := streamConfigs(t, ctx, js, "alt", 3)

	bad := []struct {
		name string
		set  map[string]string
		del  []string
		want string
	}{
		{"unknown key", map[string]string{"retention": "1d", "segment.ms": "10"}, nil,
			`unknown config key "segment.ms": use retention (retention.ms), retention-bytes (retention.bytes), max-record-bytes (max.message.bytes) or delete-retention (delete.retention.ms)`},
		{"fixed key", map[string]string{"partitions": "6"}, nil, "add-partitions"},
		{"bad duration", map[string]string{"retention": "3x"}, nil, `config retention=3x: "3x" is not a duration`},
		{"bad size", map[string]string{"retention-bytes": "lots"}, nil, `"lots" is not a size`},
		{"too large", map[string]string{"max-record-bytes": "9MiB"}, nil, "out of range"},
		{"below one batch", map[string]string{"retention-bytes": "2KiB"}, nil, "below max message bytes"},
		{"set and deleted", map[string]string{"retention": "1d"}, []string{"retention.ms"}, "both set"},
		{"compacted only", map[string]string{"delete-retention": "1h"}, nil, "compacted topics only"},
		{"nothing", nil, nil, "no config change"},
	}
	for _, tc := range bad {
		_, err := adm.AlterTopicConfig(ctx, "alt", tc.set, tc.del...)
		if !errors.Is(err, semantics.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `topic "alt"`) {
			t.Errorf("%s: %v, want INVALID_CONFIG naming the topic and %q", tc.name, err, tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error has more than one line: %q", tc.name, err)
		}
	}
	if got := streamConfigs(t, ctx, js, "alt", 3); !slices.EqualFunc(got, before, func(x, y jetstream.StreamConfig) bool {
		return x.MaxAge == y.MaxAge && x.MaxBytes == y.MaxBytes && x.MaxMsgSize == y.MaxMsgSize
	}) {
		t.Errorf("refused changes changed the streams")
	}
	if now, _ := adm.Topic(ctx, "alt"); now.Config != info.Config {
		t.Errorf("refused changes changed the record: %+v, was %+v", now.Config, info.Config)
	}
	if _, err := adm.AlterTopicConfig(ctx, "nope", map[string]string{"retention": "1d"}); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Errorf("alter an unknown topic: %v", err)
	}

	// A change that fails half-way (partition 2's stream is gone) records nothing
	// and says to retry.
	qxdtest.CreateTopic(t, c, "alt-half", qxd.TopicConfig{Partitions: 3})
	if err := js.DeleteStream(ctx, semantics.StreamName("alt-half", 2)); err != nil {
		t.Fatal(err)
	}
	_, err = adm.AlterTopicConfig(ctx, "alt-half", map[string]string{"retention": "1h"})
	if err == nil || !strings.Contains(err.Error(), "partition 2") || !strings.Contains(err.Error(), "retry") {
		t.Errorf("alter with a partition's stream gone: %v", err)
	}
	if now, _ := adm.Topic(ctx, "alt-half"); now.Config.Retention != semantics.DefaultRetention || len(now.Overrides) != 0 {
		t.Errorf("a failed alter changed the record: %+v %v", now.Config, now.Overrides)
	}

	// A compacted topic takes delete-retention, not retention.
	qxdtest.CreateTopic(t, c, "alt-c", qxd.TopicConfig{Compact: true})
	if info, err := adm.AlterTopicConfig(ctx, "alt-c", map[string]string{"delete.retention.ms": "7200000"}); err != nil || info.Config.DeleteRetention != 2*time.Hour {
		t.Errorf("alter delete retention: %+v, %v", info.Config, err)
	}
	if _, err := adm.AlterTopicConfig(ctx, "alt-c", map[string]string{"retention": "1d"}); !errors.Is(err, semantics.ErrInvalidConfig) {
		t.Errorf("retention on a compacted topic: %v", err)
	}
}

func TestCreateIfNotExistsDeleteIfExists(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	adm := c.Admin()
	first, created, err := adm.CreateTopicIfNotExists(ctx, "ine", qxd.TopicConfig{Partitions: 2})
	if err != nil || !created || first.Config.Partitions != 2 {
		t.Fatalf("first create: %+v, %t, %v", first, created, err)
	}
	again, created, err := adm.CreateTopicIfNotExists(ctx, "ine", qxd.TopicConfig{Partitions: 5})
	if err != nil || created || again.ID != first.ID || again.Config.Partitions != 2 {
		t.Fatalf("second create: %+v, %t, %v; want the first topic, not created", again, created, err)
	}
	if _, err := adm.CreateTopic(ctx, "ine", qxd.TopicConfig{}); !errors.Is(err, semantics.ErrTopicExists) {
		t.Fatalf("plain create of an existing topic: %v", err)
	}
	if _, _, err := adm.CreateTopicIfNotExists(ctx, "bad name", qxd.TopicConfig{}); !errors.Is(err, semantics.ErrInvalidTopic) {
		t.Fatalf("create a bad name if not exists: %v", err)
	}
	deleted, err := adm.DeleteTopicIfExists(ctx, "ine")
	if err != nil || !deleted {
		t.Fatalf("delete: %t, %v", deleted, err)
	}
	deleted, err = adm.DeleteTopicIfExists(ctx, "ine")
	if err != nil || deleted {
		t.Fatalf("delete again: %t, %v; want nothing deleted, no error", deleted, err)
	}
	if err := adm.DeleteTopic(ctx, "ine"); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Fatalf("plain delete of a missing topic: %v", err)
	}
}

// readFrom reads partition 0 of topic from o with the reset policy and returns the
// first record, or the error.
func readFrom(t *testing.T, c *qxd.Client, topic string, o qxd.Offset, reset qxd.ResetPolicy) (qxd.Record, error) {
	t.Helper()
	ctx := qxdtest.Context(t, 10*time.Second)
	cons := qxdtest.NewConsumer(t, c, qxd.AutoOffsetReset(reset))
	defer cons.Close(context.Background())
	if err := cons.Assign(ctx, qxd.Assignment{Topic: topic, Partition: 0, Offset: o}); err != nil {
		return qxd.Record{}, err
	}
	recs, err := cons.Poll(ctx)
	if err != nil {
		return qxd.Record{}, err
	}
	return recs[0], nil
}

// TestDeleteRecords: a trim moves the log start, also into the middle of a batch:
// the records below it are not read any more, a read from below it starts at it or
// fails by the reset policy, the batches wholly below it leave the stream, and
// offsets go on as they were.
func TestDeleteRecords(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "trim", qxd.TopicConfig{Partitions: 2})
	adm := c.Admin()
	prod, err := c.NewProducer(qxd.RecordPartition())
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(ctx)
	produce := func(from, count int) {
		t.Helper()
		var recs []*qxd.Record
		for i := from; i < from+count; i++ {
			recs = append(recs, &qxd.Record{Topic: "trim", Value: []byte(fmt.Sprint(i))})
		}
		if err := prod.ProduceSync(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	for b := range 3 { // three batches: offsets 0-9, 10-19, 20-29
		produce(b*10, 10)
	}
	stream, err := js.Stream(ctx, semantics.StreamName("trim", 0))
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := stream.Info(ctx); info.State.Msgs != 3 {
		t.Fatalf("partition 0 holds %d batches, want 3", info.State.Msgs)
	}

	start, err := adm.DeleteRecords(ctx, "trim", 0, 15)
	if err != nil || start != 15 {
		t.Fatalf("trim to 15: %d, %v", start, err)
	}
	if info, _ := stream.Info(ctx); info.State.Msgs != 2 {
		t.Errorf("after the trim partition 0 holds %d batches, want 2 (the first one wholly below 15 removed)", info.State.Msgs)
	}
	d, err := adm.DescribeTopic(ctx, "trim")
	if err != nil {
		t.Fatal(err)
	}
	if p := d.Partitions[0]; p.LogStartOffset != 15 || p.HighWatermark != 30 || p.Records != 15 {
		t.Errorf("describe after the trim: %+v", p)
	}
	if r, err := readFrom(t, c, "trim", qxd.AtStart(), qxd.ResetEarliest); err != nil || r.Offset != 15 || string(r.Value) != "15" {
		t.Errorf("read from the start: offset %d %q, %v; want 15", r.Offset, r.Value, err)
	}
	if r, err := readFrom(t, c, "trim", qxd.At(12), qxd.ResetEarliest); err != nil || r.Offset != 15 {
		t.Errorf("read from 12, reset earliest: offset %d, %v; want 15", r.Offset, err)
	}
	if _, err := readFrom(t, c, "trim", qxd.At(12), qxd.ResetNone); !errors.Is(err, semantics.ErrOffsetOutOfRange) {
		t.Errorf("read from 12, reset none: %v; want OFFSET_OUT_OF_RANGE", err)
	}
	if r, err := readFrom(t, c, "trim", qxd.At(16), qxd.ResetNone); err != nil || r.Offset != 16 {
		t.Errorf("read from 16: offset %d, %v", r.Offset, err)
	}

	// Below the log start: nothing changes. Beyond the high watermark: an error
	// naming the range.
	if start, err := adm.DeleteRecords(ctx, "trim", 0, 5); err != nil || start != 15 {
		t.Errorf("trim to 5 below log start 15: %d, %v; want 15, no error", start, err)
	}
	_, err = adm.DeleteRecords(ctx, "trim", 0, 31)
	if !errors.Is(err, semantics.ErrOffsetOutOfRange) || !strings.Contains(err.Error(), "from 15 (the log start) to 30 (the high watermark)") {
		t.Errorf("trim beyond the high watermark: %v", err)
	}
	if _, err := adm.DeleteRecords(ctx, "trim", 2, 0); !errors.Is(err, semantics.ErrUnknownTopic) || !strings.Contains(err.Error(), "partitions 0 to 1") {
		t.Errorf("trim partition 2 of 2: %v", err)
	}

	// To the high watermark (-1): nothing is readable, offsets go on.
	if start, err := adm.DeleteRecords(ctx, "trim", 0, -1); err != nil || start != 30 {
		t.Fatalf("trim to the high watermark: %d, %v", start, err)
	}
	d, _ = adm.DescribeTopic(ctx, "trim")
	if p := d.Partitions[0]; p.LogStartOffset != 30 || p.HighWatermark != 30 || p.Records != 0 {
		t.Errorf("describe after trimming everything: %+v", p)
	}
	produce(30, 5)
	if r, err := readFrom(t, c, "trim", qxd.AtStart(), qxd.ResetEarliest); err != nil || r.Offset != 30 || string(r.Value) != "30" {
		t.Errorf("read after trimming everything and producing again: offset %d %q, %v; want 30", r.Offset, r.Value, err)
	}
	// The other partition is untouched.
	if p := d.Partitions[1]; p.LogStartOffset != 0 {
		t.Errorf("partition 1: %+v", p)
	}

	qxdtest.CreateTopic(t, c, "trim-c", qxd.TopicConfig{Compact: true})
	if _, err := adm.DeleteRecords(ctx, "trim-c", 0, 0); !errors.Is(err, semantics.ErrPolicyViolation) {
		t.Errorf("trim a compacted topic: %v", err)
	}
}

// TestMetadata: the one-shot metadata view names every node with its address, and
// per partition its leader, replicas and in-sync replicas; describe shows the
// in-sync replicas too. On one node and on a cluster of three.
func TestMetadata(t *testing.T) {
	t.Parallel()
	t.Run("single node", func(t *testing.T) {
		t.Parallel()
		n := qxdtest.StartNode(t)
		c := qxdtest.Connect(t, n)
		ctx := qxdtest.Context(t, 30*time.Second)
		qxdtest.CreateTopic(t, c, "md", qxd.TopicConfig{Partitions: 2})
		md, err := c.Admin().Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		self := n.NATSServer().Name()
		if len(md.Brokers) != 1 || md.Brokers[0].Name != self || "nats://"+md.Brokers[0].Addr != n.ClientURL() || !md.Brokers[0].Up {
			t.Errorf("brokers %+v, want %s at %s", md.Brokers, self, n.ClientURL())
		}
		if md.MetaLeader != self || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 2 {
			t.Fatalf("metadata %+v", md)
		}
		for _, p := range md.Topics[0].Partitions {
			if p.Leader != self || !slices.Equal(p.Replicas, []string{self}) || !slices.Equal(p.InSync, []string{self}) {
				t.Errorf("partition %+v", p)
			}
		}
		d, err := c.Admin().DescribeTopic(ctx, "md")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(d.Partitions[0].InSync, []string{self}) {
			t.Errorf("describe: in-sync replicas %v, want %s", d.Partitions[0].InSync, self)
		}
		md, err = c.Admin().Metadata(ctx, "md", "nope")
		if err != nil || len(md.Topics) != 2 || md.Topics[1].Name != "nope" || !errors.Is(md.Topics[1].Error.Err(), semantics.ErrUnknownTopic) {
			t.Errorf("metadata of md and nope: %+v, %v", md.Topics, err)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
		ctx := qxdtest.Context(t, 60*time.Second)
		c := qxdtest.ConnectCluster(t, nodes)
		if _, err := c.Admin().CreateTopic(ctx, "md3", qxd.TopicConfig{Partitions: 3, Replicas: 3}); err != nil {
			t.Fatal(err)
		}
		addrs := map[string]string{}
		for _, n := range nodes {
			addrs[n.NATSServer().Name()] = n.ClientURL()
		}
		var (
			md  qxd.Metadata
			err error
		)
		deadline := time.Now().Add(20 * time.Second)
		for {
			md, err = c.Admin().Metadata(ctx)
			if err == nil && len(md.Topics) == 1 && !slices.ContainsFunc(md.Topics[0].Partitions, func(p semantics.PartitionMetadata) bool { return len(p.InSync) != 3 }) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replicas not all in sync within 20s: %+v, %v", md, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(md.Brokers) != 3 || md.MetaLeader == "" {
			t.Fatalf("brokers %+v, meta leader %q", md.Brokers, md.MetaLeader)
		}
		for _, b := range md.Brokers {
			if "nats://"+b.Addr != addrs[b.Name] || !b.Up {
				t.Errorf("broker %+v, want address %s", b, addrs[b.Name])
			}
		}
		all := []string{"n1", "n2", "n3"}
		for _, p := range md.Topics[0].Partitions {
			if p.Leader == "" || !slices.Equal(p.Replicas, all) || !slices.Equal(p.InSync, all) {
				t.Errorf("partition %+v", p)
			}
		}
		d, err := c.Admin().DescribeTopic(ctx, "md3")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Partitions {
			if len(p.InSync) != 3 || p.InSync[0] != p.Leader {
				t.Errorf("describe partition %d: leader %s, in sync %v", p.Partition, p.Leader, p.InSync)
			}
		}

		// A node stops: it is down, without an address, and out of every ISR.
		down := nodes[2].NATSServer().Name()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err = nodes[2].Close(cctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(30 * time.Second)
		for {
			md, err = c.Admin().Metadata(ctx)
			if err == nil && len(md.Brokers) == 3 && md.Brokers[2].Name == down && !md.Brokers[2].Up &&
				!slices.ContainsFunc(md.Topics[0].Partitions, func(p semantics.PartitionMetadata) bool {
					return p.Leader == "" || p.Leader == down || len(p.InSync) != 2 || slices.Contains(p.InSync, down) || len(p.Replicas) != 3
				}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("metadata 30s after %s stopped: %+v, %v", down, md, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if md.Brokers[2].Addr != "" {
			t.Errorf("stopped node %s has the address %q", down, md.Brokers[2].Addr)
		}
	})
}

// TestTopicAdminRights: altering and trimming need admin rights on the topic, and
// are refused with an error that says which; the metadata view is open to everyone,
// as the topic list is.
func TestTopicAdminRights(t *testing.T) {
	t.Parallel()
	node := qxdtest.StartNodeWith(t, securedConfig(t))
	super := connectAs(t, node.ClientURL(), "super")
	qxdtest.CreateTopic(t, super, "orders", qxd.TopicConfig{})
	ctx := qxdtest.Context(t, 30*time.Second)
	prod := connectAs(t, node.ClientURL(), "producer")
	_, err := prod.Admin().AlterTopicConfig(ctx, "orders", map[string]string{"retention": "1h"})
	if !errors.Is(err, semantics.ErrTopicAuthorizationFailed) || !strings.Contains(err.Error(), `not authorized to alter the config of topic "orders"`) {
		t.Errorf("alter config as producer: %v", err)
	}
	_, err = prod.Admin().DeleteRecords(ctx, "orders", 0, 0)
	if !errors.Is(err, semantics.ErrTopicAuthorizationFailed) || !strings.Contains(err.Error(), `not authorized to trim topic "orders"`) {
		t.Errorf("trim as producer: %v", err)
	}
	if info, _ := super.Admin().Topic(ctx, "orders"); info.Config.Retention != semantics.DefaultRetention {
		t.Errorf("a refused alter changed the topic: %+v", info.Config)
	}
	md, err := connectAs(t, node.ClientURL(), "nobody").Admin().Metadata(ctx)
	if err != nil || len(md.Topics) != 1 || len(md.Brokers) != 1 {
		t.Errorf("metadata as nobody: %+v, %v", md, err)
	}
	if _, err := connectAs(t, node.ClientURL(), "admin").Admin().AlterTopicConfig(ctx, "orders", map[string]string{"retention": "1h"}); err != nil {
		t.Errorf("alter config as admin: %v", err)
	}
}

// TestAlterTopicConfigRefusedByJetStream alters retention-bytes to more than the node
// can reserve for all partitions: the first partition takes it, a later one is refused.
// The error must say so, and every partition and the topic must keep the old config.
func TestAlterTopicConfigRefusedByJetStream(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "huge", qxd.TopicConfig{Partitions: 3, RetentionBytes: 1 << 20})
	store := n.NATSServer().JetStreamConfig().MaxStore
	if store <= 0 {
		t.Fatalf("the node's JetStream store limit is %d", store)
	}
	// Over half the store: partition 0 can reserve it, partition 1 cannot.
	set := map[string]string{"retention-bytes": strconv.FormatInt(store/2+store/4, 10)}
	_, err := c.Admin().AlterTopicConfig(ctx, "huge", set)
	if !errors.Is(err, semantics.ErrInvalidConfig) || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("alter retention-bytes to %s of a %d-byte store: err = %v, want INVALID_CONFIG saying nothing changed", set["retention-bytes"], store, err)
	}
	info, err := c.Admin().Topic(ctx, "huge")
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.RetentionBytes != 1<<20 {
		t.Errorf("topic retention-bytes after the refused alter: %d, want %d", info.Config.RetentionBytes, 1<<20)
	}
	for p, sc := range streamConfigs(t, ctx, js, "huge", 3) {
		if sc.MaxBytes != 1<<20 {
			t.Errorf("partition %d stream max bytes after the refused alter: %d, want %d", p, sc.MaxBytes, 1<<20)
		}
	}
}

// TestTimeLookupAfterTrim: a start by time never lands below the log start. A
// trim leaves the batch holding the new log start stored, with its records below
// it, and keeps the last batch when it trims to the high watermark; a lookup by
// time that found such a batch started at a trimmed record (`group seek --to
// -1h` after `topic trim` set offset 0 on a partition trimmed to 2).
func TestTimeLookupAfterTrim(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "trimtime", qxd.TopicConfig{})
	fill(t, c, "trimtime", 21, 7) // batches 0-6, 7-13, 14-20; record j at base + j s
	base := time.UnixMilli(1_700_000_000_000)
	adm := c.Admin()
	if start, err := adm.DeleteRecords(ctx, "trimtime", 0, 10); err != nil || start != 10 {
		t.Fatalf("trim to 10: %d, %v", start, err)
	}
	for _, tc := range []struct {
		at   time.Duration
		want int64
	}{{-time.Hour, 10}, {8 * time.Second, 10}, {12 * time.Second, 12}} {
		if r, err := readFrom(t, c, "trimtime", qxd.AtTime(base.Add(tc.at)), qxd.ResetNone); err != nil || r.Offset != tc.want {
			t.Errorf("read from base%+v after a trim to 10: offset %d, %v; want %d", tc.at, r.Offset, err, tc.want)
		}
	}
	set, err := adm.SeekGroup(ctx, "trimtime-g", "trimtime", nil, qxd.AtTime(base.Add(3*time.Second)))
	if err != nil || set[qxd.TopicPartition{Topic: "trimtime", Partition: 0}] != 10 {
		t.Errorf("group seek to base+3s after a trim to 10: %v, %v; want offset 10", set, err)
	}

	// Trimmed to the high watermark: the last batch stays stored, nothing is
	// readable, and a start by time is the high watermark.
	if start, err := adm.DeleteRecords(ctx, "trimtime", 0, -1); err != nil || start != 21 {
		t.Fatalf("trim to the high watermark: %d, %v", start, err)
	}
	set, err = adm.SeekGroup(ctx, "trimtime-g", "trimtime", nil, qxd.AtTime(base.Add(-time.Hour)))
	if err != nil || set[qxd.TopicPartition{Topic: "trimtime", Partition: 0}] != 21 {
		t.Errorf("group seek by time after a trim to the high watermark: %v, %v; want offset 21", set, err)
	}
}
