package server_test

import (
	"context"
	"errors"
	"fmt"
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

// A topic's durability is applied at run time to its partitions' stores, not
// set as the streams' persist mode (which JetStream cannot change): every stream
// is created in JetStream's default mode, and the partition's writer sets its
// store to async or back to sync. Observed in the store's own settings that its
// write path reads (fsync each write, write in place), through an alter both
// ways and a restart; describe shows the durability the stores apply.
func TestTopicDurabilityAlter(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := qxdtest.StartNodeWith(t, qxdtest.NodeConfig(t, dir))
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, time.Minute)

	qxdtest.CreateTopic(t, c, "metrics", qxd.TopicConfig{Partitions: 2, Durability: "async"})
	qxdtest.CreateTopic(t, c, "orders", qxd.TopicConfig{Partitions: 2})
	if _, err := c.Admin().AddPartitions(ctx, "metrics", 3); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"metrics", "orders"} {
		s, err := js.Stream(ctx, semantics.StreamName(topic, 0))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.PersistMode; got != jetstream.DefaultPersistMode {
			t.Errorf("%s/0: persist mode %v, want JetStream's default", topic, got)
		}
	}
	produce := func(topic string, parts int32) {
		t.Helper()
		p, err := c.NewProducer()
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		var recs []*qxd.Record
		for i := range 10 {
			recs = append(recs, &qxd.Record{Topic: topic, Partition: int32(i) % parts, Value: []byte{byte(i)}})
		}
		if err := p.ProduceSync(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	// check waits until every partition of topic writes with durability want, in
	// its store and as describe shows it.
	check := func(n *server.Node, c *qxd.Client, topic string, parts int32, want string) {
		t.Helper()
		var last string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			last = ""
			for p := range parts {
				fsyncEach, inPlace, ok := n.StoreDurability(semantics.StreamName(topic, p))
				if wantSync := want == "sync"; !ok || fsyncEach != wantSync || inPlace != wantSync {
					last += fmt.Sprintf("; %s/%d: store found %t, fsyncs each write %t, writes in place %t", topic, p, ok, fsyncEach, inPlace)
				}
			}
			d, err := c.Admin().DescribeTopic(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			if d.Topic.Config.DurabilityOrDefault() != want {
				last += fmt.Sprintf("; describe: topic durability %q", d.Topic.Config.DurabilityOrDefault())
			}
			for _, pi := range d.Partitions {
				if pi.Durability != want {
					last += fmt.Sprintf("; describe: partition %d writes %q", pi.Partition, pi.Durability)
				}
			}
			if last == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: want durability %s everywhere%s", topic, want, last)
			}
		}
	}
	check(n, c, "metrics", 3, "async")
	check(n, c, "orders", 2, "sync")
	produce("metrics", 3)
	produce("orders", 2)

	// Both ways, in either spelling; the alter returns once the stores apply it.
	if _, err := c.Admin().AlterTopicConfig(ctx, "metrics", map[string]string{"durability": "always"}); err != nil {
		t.Fatal(err)
	}
	check(n, c, "metrics", 3, "sync")
	if _, err := c.Admin().AlterTopicConfig(ctx, "orders", map[string]string{"durability": "async"}); err != nil {
		t.Fatal(err)
	}
	check(n, c, "orders", 2, "async")
	produce("orders", 2)
	// A stream config change (retention) has JetStream reset the store's
	// settings; the writer puts the topic's back.
	if _, err := c.Admin().AlterTopicConfig(ctx, "orders", map[string]string{"retention": "3d"}); err != nil {
		t.Fatal(err)
	}
	produce("orders", 2)
	check(n, c, "orders", 2, "async")

	// After a restart the record decides: metrics syncs, orders is async again.
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	n = qxdtest.StartNodeWith(t, qxdtest.NodeConfig(t, dir))
	c = qxdtest.Connect(t, n)
	check(n, c, "metrics", 3, "sync")
	check(n, c, "orders", 2, "async")
	d, err := c.Admin().DescribeTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, pi := range d.Partitions {
		total += pi.Records
	}
	if total != 30 {
		t.Errorf("orders holds %d records after the restart, want the 30 produced", total)
	}
	// Back to the default by deleting the key.
	if _, err := c.Admin().AlterTopicConfig(ctx, "orders", nil, "durability"); err != nil {
		t.Fatal(err)
	}
	check(n, c, "orders", 2, "sync")
}

// A partition stream created with JetStream's persist mode async (as qxd did
// before a topic's durability could be altered) is kept syncing when its topic
// is sync: from the writer's start, and again after JetStream sets the store
// back to async, as it does on every change of the stream's config.
func TestTopicDurabilityLegacyStream(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, time.Minute)

	qxdtest.CreateTopic(t, c, "legacy", qxd.TopicConfig{})
	stream := semantics.StreamName("legacy", 0)
	recreateAsync(t, ctx, js, stream)
	syncs := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			fsyncEach, inPlace, ok := n.StoreDurability(stream)
			if ok && fsyncEach && inPlace {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the store of a sync topic's stream made with persist mode async: found %t, fsyncs each write %t, writes in place %t", what, ok, fsyncEach, inPlace)
			}
		}
	}
	syncs("after the stream was made")
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for i, retention := range []string{"3d", "4d"} {
		if _, err := c.Admin().AlterTopicConfig(ctx, "legacy", map[string]string{"retention": retention}); err != nil {
			t.Fatal(err)
		}
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "legacy", Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
		syncs("after a change of the stream's config and an append")
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
	for _, tc := range []struct{ value, want string }{
		{"sometimes", `config durability=sometimes: durability "sometimes" is not known`},
	} {
		_, err := c.Admin().AlterTopicConfig(ctx, "kept", map[string]string{"durability": tc.value})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, qxd.ErrInvalidConfig) {
			t.Errorf("alter durability=%s: %v, want an invalid-config error containing %q", tc.value, err, tc.want)
		}
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

// In a cluster, an alter made through one node reaches the stores of the
// partitions other nodes hold, and describe through that node shows what each
// holder's store writes; async on a replicated topic is refused in one line.
// The writers' background ticks leave the stores alone here: each holder's
// writer applies the durability as it sees the topic's record change.
func TestTopicDurabilityAlterCluster(t *testing.T) {
	t.Parallel()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	for _, n := range nodes {
		n.SetDurabilityTick(false)
	}
	c := qxdtest.Connect(t, nodes[0])
	ctx := qxdtest.Context(t, time.Minute)

	const parts = 6
	qxdtest.CreateTopic(t, c, "spread", qxd.TopicConfig{Partitions: parts, Durability: "async"})
	qxdtest.CreateTopic(t, c, "replicated", qxd.TopicConfig{Replicas: 3})
	// Ask through a node that does not hold partition 0: JetStream places
	// one-replica streams where it likes, all on one node at times.
	asked := nodes[0]
	for _, n := range nodes {
		if _, _, ok := n.StoreDurability(semantics.StreamName("spread", 0)); !ok {
			asked = n
			break
		}
	}
	c = qxdtest.Connect(t, asked)
	check := func(want string) {
		t.Helper()
		var last string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			last = ""
			holders := map[string]bool{}
			for p := range int32(parts) {
				found := 0
				for _, n := range nodes {
					fsyncEach, inPlace, ok := n.StoreDurability(semantics.StreamName("spread", p))
					if !ok {
						continue
					}
					found++
					holders[n.Name()] = true
					if wantSync := want == "sync"; fsyncEach != wantSync || inPlace != wantSync {
						last += fmt.Sprintf("; partition %d on %s: fsyncs each write %t, writes in place %t", p, n.Name(), fsyncEach, inPlace)
					}
				}
				if found != 1 {
					last += fmt.Sprintf("; partition %d held by %d nodes", p, found)
				}
			}
			d, err := c.Admin().DescribeTopic(ctx, "spread")
			if err != nil {
				t.Fatal(err)
			}
			for _, pi := range d.Partitions {
				if pi.Durability != want {
					last += fmt.Sprintf("; describe: partition %d (leader %s) writes %q", pi.Partition, pi.Leader, pi.Durability)
				}
			}
			if last == "" {
				if delete(holders, asked.Name()); len(holders) == 0 {
					t.Fatalf("the %d partitions are all on %s, the node asked: the test needs some on others", parts, asked.Name())
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("want durability %s%s", want, last)
			}
		}
	}
	check("async")
	if _, err := c.Admin().AlterTopicConfig(ctx, "spread", map[string]string{"durability": "sync"}); err != nil {
		t.Fatal(err)
	}
	check("sync")
	if _, err := c.Admin().AlterTopicConfig(ctx, "spread", map[string]string{"durability": "async"}); err != nil {
		t.Fatal(err)
	}
	check("async")

	_, err := c.Admin().AlterTopicConfig(ctx, "replicated", map[string]string{"durability": "async"})
	if want := `config durability=async: topic "replicated" has 3 replicas, and async needs 1`; err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Errorf("alter a replicated topic to async: %v, want one line containing %q", err, want)
	}
	d, err := c.Admin().DescribeTopic(ctx, "replicated")
	if err != nil {
		t.Fatal(err)
	}
	if d.Topic.Config.DurabilityOrDefault() != "sync" || d.Partitions[0].Durability != "sync" {
		t.Errorf("replicated after the refused alter: topic %q, partition %q; want sync", d.Topic.Config.DurabilityOrDefault(), d.Partitions[0].Durability)
	}
}

// recreateAsync deletes stream and creates it again with JetStream's persist
// mode async, as an earlier qxd created partition streams.
func recreateAsync(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string) {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.PersistMode = jetstream.AsyncPersistMode
	if err := js.DeleteStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// storesBehind returns the partitions of topic (of parts) whose store on n
// does not write with durability want.
func storesBehind(n *server.Node, topic string, parts int32, want string) []string {
	var behind []string
	for p := range parts {
		fsyncEach, inPlace, ok := n.StoreDurability(semantics.StreamName(topic, p))
		if wantSync := want == "sync"; !ok || fsyncEach != wantSync || inPlace != wantSync {
			behind = append(behind, fmt.Sprint(p))
		}
	}
	return behind
}
