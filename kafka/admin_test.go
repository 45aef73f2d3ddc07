package kafka_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qxd-io/qxd/semantics"
)

func ptr(s string) *string { return &s }

// A topic made through Kafka's admin API is an ordinary qxd topic, and the SDK's
// changes show in Kafka's.
func TestKafkaAdmin(t *testing.T) {
	t.Parallel()
	n, c := startNode(t)
	ctx := ctxFor(t, 60*time.Second)
	adm := kadm.NewClient(kafkaClient(t, n))

	// Validate-only creates nothing.
	r, err := adm.ValidateCreateTopics(ctx, 2, 1, map[string]*string{"retention.ms": ptr("3600000")}, "ledger")
	if err != nil || r["ledger"].Err != nil {
		t.Fatalf("validate create: %v %v", err, r["ledger"].Err)
	}
	if _, err := c.Admin().Topic(ctx, "ledger"); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Fatalf("after a validate-only create: %v, want unknown topic", err)
	}

	r, err = adm.CreateTopics(ctx, 2, 1, map[string]*string{"retention.ms": ptr("3600000"), "max.message.bytes": ptr("2048")}, "ledger")
	if err != nil || r["ledger"].Err != nil {
		t.Fatalf("create: %v %v", err, r["ledger"].Err)
	}
	info, err := c.Admin().Topic(ctx, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Partitions != 2 || info.Config.Retention != time.Hour || info.Config.MaxMessageBytes != 2048 || info.Config.Compact {
		t.Fatalf("SDK sees %+v", info.Config)
	}
	if id := r["ledger"].ID; id == (kadm.TopicID{}) {
		t.Errorf("create answered no topic id")
	}

	for name, tc := range map[string]struct {
		partitions int32
		replicas   int16
		configs    map[string]*string
		topic      string
		want       error
	}{
		"exists":         {1, 1, nil, "ledger", kerr.TopicAlreadyExists},
		"replicas":       {1, 3, nil, "r3", kerr.InvalidReplicationFactor},
		"bad name":       {1, 1, nil, "a/b", kerr.InvalidTopicException},
		"unknown config": {1, 1, map[string]*string{"segment.ms": ptr("1")}, "cfg", kerr.InvalidConfig},
		"bad policy":     {1, 1, map[string]*string{"cleanup.policy": ptr("compact,delete")}, "cfg", kerr.InvalidConfig},
	} {
		r, err := adm.CreateTopics(ctx, tc.partitions, tc.replicas, tc.configs, tc.topic)
		if err != nil {
			t.Fatal(err)
		}
		if got := r[tc.topic].Err; !errors.Is(got, tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}

	rc, err := adm.DescribeTopicConfigs(ctx, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, cfg := range rc[0].Configs {
		got[cfg.Key] = *cfg.Value
		if (cfg.Key == "retention.ms") != (cfg.Source == 1) && cfg.Key != "max.message.bytes" {
			t.Errorf("config %s source %v", cfg.Key, cfg.Source)
		}
	}
	if got["retention.ms"] != "3600000" || got["max.message.bytes"] != "2048" || got["cleanup.policy"] != "delete" || got["retention.bytes"] != "-1" {
		t.Errorf("configs %v", got)
	}

	// IncrementalAlterConfigs sets and deletes; AlterConfigs replaces (what it does
	// not name goes back to its default). Both are what the SDK sees.
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.bytes", Value: ptr("10485760")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
	}, "ledger")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("incremental alter: %v %v", err, ar[0].Err)
	}
	if info, _ := c.Admin().Topic(ctx, "ledger"); info.Config.RetentionBytes != 10<<20 || info.Config.Retention != semantics.DefaultRetention {
		t.Fatalf("after incremental alter the SDK sees %+v", info.Config)
	}
	ar, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: ptr("60000")}}, "ledger")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("alter: %v %v", err, ar[0].Err)
	}
	if info, _ := c.Admin().Topic(ctx, "ledger"); info.Config.Retention != time.Minute || info.Config.RetentionBytes != -1 || info.Config.MaxMessageBytes != semantics.DefaultMaxMessageBytes {
		t.Fatalf("after alter the SDK sees %+v", info.Config)
	}
	// qxd's own durability key, which has no Kafka name, is set through
	// IncrementalAlterConfigs too; AlterConfigs, replacing Kafka's configs, leaves it.
	ar, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "durability", Value: ptr("async")}}, "ledger")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("incremental alter of durability: %v %v", err, ar[0].Err)
	}
	ar, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: ptr("60000")}}, "ledger")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("alter: %v %v", err, ar[0].Err)
	}
	if info, _ := c.Admin().Topic(ctx, "ledger"); info.Config.DurabilityOrDefault() != semantics.DurabilityAsync {
		t.Fatalf("after setting durability async and replacing Kafka's configs the SDK sees durability %q", info.Config.DurabilityOrDefault())
	}
	ar, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "durability"}}, "ledger")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("incremental delete of durability: %v %v", err, ar[0].Err)
	}
	if info, _ := c.Admin().Topic(ctx, "ledger"); info.Config.DurabilityOrDefault() != semantics.DurabilitySync {
		t.Fatalf("after deleting durability the SDK sees %q", info.Config.DurabilityOrDefault())
	}
	ar, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: ptr("compact")}}, "ledger")
	if err != nil || !errors.Is(ar[0].Err, kerr.InvalidConfig) {
		t.Fatalf("alter cleanup.policy: %v %v, want INVALID_CONFIG", err, ar[0].Err)
	}
	ar, err = adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: ptr("1000")}}, "ledger")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("validate alter: %v %v", err, ar[0].Err)
	}
	if info, _ := c.Admin().Topic(ctx, "ledger"); info.Config.Retention != time.Minute {
		t.Fatalf("a validate-only alter changed retention to %v", info.Config.Retention)
	}

	if _, err := adm.CreatePartitions(ctx, 2, "ledger"); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Admin().Topic(ctx, "ledger"); err != nil || info.Config.Partitions != 4 {
		t.Fatalf("after adding 2 partitions the SDK sees %d (%v)", info.Config.Partitions, err)
	}
	// A Kafka client produces to the new partitions.
	cl := kafkaClient(t, n, kgo.DefaultProduceTopic("ledger"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Partition: 3, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce to partition 3: %v", err)
	}

	r, err = adm.CreateTopics(ctx, 1, 1, map[string]*string{"cleanup.policy": ptr("compact")}, "latest")
	if err != nil || r["latest"].Err != nil {
		t.Fatalf("create compacted: %v %v", err, r["latest"].Err)
	}
	if info, err := c.Admin().Topic(ctx, "latest"); err != nil || !info.Config.Compact {
		t.Fatalf("compacted topic: %+v %v", info.Config, err)
	}

	// DeleteRecords moves partition 3's log start past its record.
	dr, err := adm.DeleteRecords(ctx, kadm.Offsets{"ledger": {3: {Topic: "ledger", Partition: 3, At: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := dr.Lookup("ledger", 3); !ok || r.Err != nil || r.LowWatermark != 1 {
		t.Fatalf("delete records: %+v", r)
	}
	if start, err := adm.ListStartOffsets(ctx, "ledger"); err != nil {
		t.Fatal(err)
	} else if o, _ := start.Lookup("ledger", 3); o.Offset != 1 {
		t.Fatalf("log start after delete records: %d, want 1", o.Offset)
	}

	d, err := adm.DeleteTopics(ctx, "ledger", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if d["ledger"].Err != nil || !errors.Is(d["missing"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete: ledger %v, missing %v", d["ledger"].Err, d["missing"].Err)
	}
	if _, err := c.Admin().Topic(ctx, "ledger"); !errors.Is(err, semantics.ErrUnknownTopic) {
		t.Fatalf("after delete the SDK sees %v", err)
	}
}
