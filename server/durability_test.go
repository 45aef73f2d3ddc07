package server_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// A topic's durability is its partition streams' persist mode: async flushes
// lazily even on a node that syncs always, sync (the default) leaves the node's
// policy in force. Partitions added later get the topic's mode.
func TestTopicDurabilityPersistMode(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, time.Minute)

	qxdtest.CreateTopic(t, c, "metrics", qxd.TopicConfig{Partitions: 2, Durability: "async"})
	qxdtest.CreateTopic(t, c, "orders", qxd.TopicConfig{Partitions: 2})
	if _, err := c.Admin().AddPartitions(ctx, "metrics", 3); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		topic string
		parts int32
		want  jetstream.PersistModeType
	}{{"metrics", 3, jetstream.AsyncPersistMode}, {"orders", 2, jetstream.DefaultPersistMode}} {
		for p := range tc.parts {
			s, err := js.Stream(ctx, semantics.StreamName(tc.topic, p))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CachedInfo().Config.PersistMode; got != tc.want {
				t.Errorf("%s/%d: persist mode %v, want %v", tc.topic, p, got, tc.want)
			}
		}
	}

	// Records of an async topic are produced as any other's.
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var recs []*qxd.Record
	for i := range 10 {
		recs = append(recs, &qxd.Record{Topic: "metrics", Partition: 0, Value: []byte{byte(i)}})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	d, err := c.Admin().DescribeTopic(ctx, "metrics")
	if err != nil {
		t.Fatal(err)
	}
	if d.Topic.Config.DurabilityOrDefault() != "async" {
		t.Errorf("describe metrics: durability %q, want async", d.Topic.Config.Durability)
	}
	var total int64
	for _, pi := range d.Partitions {
		total += pi.Records
	}
	if total != 10 {
		t.Errorf("metrics holds %d records, want the 10 produced", total)
	}
}

// Bad durability settings are refused and change nothing.
func TestTopicDurabilityErrors(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)

	for _, tc := range []struct {
		name string
		cfg  qxd.TopicConfig
		want string
	}{
		{"unknown", qxd.TopicConfig{Durability: "lazy"}, `durability "lazy" is not known`},
		// One node: 3 replicas fail placement first, so the check must come before.
		{"replicated", qxd.TopicConfig{Durability: "async", Replicas: 3}, "durability async needs 1 replica"},
	} {
		_, err := c.Admin().CreateTopic(ctx, "bad-"+tc.name, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, qxd.ErrInvalidConfig) {
			t.Errorf("create %s: %v, want an invalid-config error containing %q", tc.name, err, tc.want)
		}
		if _, err := c.Admin().DescribeTopic(ctx, "bad-"+tc.name); !errors.Is(err, qxd.ErrUnknownTopic) {
			t.Errorf("after the refused create of %s: describe: %v, want unknown topic", tc.name, err)
		}
	}

	qxdtest.CreateTopic(t, c, "kept", qxd.TopicConfig{})
	_, err := c.Admin().AlterTopicConfig(ctx, "kept", map[string]string{"durability": "async"})
	if err == nil || !strings.Contains(err.Error(), "durability is fixed when the topic is created") {
		t.Errorf("alter durability: %v, want it refused as fixed", err)
	}
	d, err := c.Admin().DescribeTopic(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if d.Topic.Config.DurabilityOrDefault() != "sync" {
		t.Errorf("after the refused alter: durability %q, want sync", d.Topic.Config.DurabilityOrDefault())
	}
}

// A node that does not sync always warns at start, naming its interval and what a
// power failure can lose; one that syncs always does not.
func TestSyncStartWarning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sync time.Duration
		warn bool
	}{{server.SyncAlways, false}, {2 * time.Minute, true}} {
		var logs syncBuffer
		cfg := qxdtest.NodeConfig(t, t.TempDir())
		cfg.Sync = tc.sync
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		n := qxdtest.StartNodeWith(t, cfg)
		warned := strings.Contains(logs.String(), "level=WARN msg=\"node does not sync appends to disk before acknowledging them: a power failure can lose")
		if warned != tc.warn || (tc.warn && !strings.Contains(logs.String(), "sync=2m")) {
			t.Errorf("sync %s: warned %t, want %t; logs:\n%s", server.FormatSync(tc.sync), warned, tc.warn, logs.String())
		}
		ctx := qxdtest.Context(t, 10*time.Second)
		if err := n.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
