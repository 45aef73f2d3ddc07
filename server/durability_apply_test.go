package server_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// A node that cannot set its partitions' stores (its nats-server's file store is
// not laid out as qxd expects) says so: an alter to async fails at once, naming
// the topic, the partitions, the node, what they write (sync) and why, and so
// does the same alter run again; describe shows each partition as sync with the
// reason, and the stores do sync every append. A stream made with JetStream's
// persist mode async, which such a node cannot make sync, shows as async, and an
// alter to sync fails saying a power failure can lose acknowledged records.
func TestTopicDurabilityCannotApply(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	const why = "the file store has no field fip"
	n.MismatchStoreLayout(why)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, time.Minute)

	qxdtest.CreateTopic(t, c, "metrics", qxd.TopicConfig{Partitions: 3})
	qxdtest.CreateTopic(t, c, "born-async", qxd.TopicConfig{Durability: "async"})
	if err := qxdtest.NewProducer(t, c).ProduceSync(ctx, &qxd.Record{Topic: "metrics", Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	for run := range 2 { // once, and again with the record already async
		began := time.Now()
		_, err := c.Admin().AlterTopicConfig(ctx, "metrics", map[string]string{"durability": "async"})
		took := time.Since(began)
		for _, want := range []string{`alter topic "metrics": durability async is recorded, but cannot be applied`,
			"partition(s) 0, 1, 2 write sync (node test cannot set its store of the partition to async: " + why + ")",
			"as safe as before"} {
			if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("run %d: alter to async on a node that cannot apply it: %v, want one line containing %q", run, err, want)
			}
		}
		if !errors.Is(err, qxd.ErrInvalidConfig) {
			t.Errorf("run %d: alter error %v, want an invalid-config error", run, err)
		}
		t.Logf("run %d: the alter failed after %v: %v", run, took, err)
	}
	for _, tc := range []struct {
		topic string
		parts int32
	}{{"metrics", 3}, {"born-async", 1}} {
		d, err := c.Admin().DescribeTopic(ctx, tc.topic)
		if err != nil {
			t.Fatal(err)
		}
		if d.Topic.Config.DurabilityOrDefault() != "async" {
			t.Errorf("%s: the record's durability is %q, want async as asked", tc.topic, d.Topic.Config.DurabilityOrDefault())
		}
		for _, pi := range d.Partitions {
			if wantNote := "node test cannot set its store of the partition to async: " + why; pi.Durability != "sync" || pi.DurabilityNote != wantNote {
				t.Errorf("%s/%d: describe shows durability %q, note %q; want sync, %q", tc.topic, pi.Partition, pi.Durability, pi.DurabilityNote, wantNote)
			}
		}
		for p := range tc.parts {
			if fsyncEach, inPlace, ok := n.StoreDurability(semantics.StreamName(tc.topic, p)); !ok || !fsyncEach || !inPlace {
				t.Errorf("%s/%d: store found %t, fsyncs each write %t, writes in place %t; want a store syncing every append", tc.topic, p, ok, fsyncEach, inPlace)
			}
		}
	}
	// Back to sync: in effect already, nothing to say.
	if _, err := c.Admin().AlterTopicConfig(ctx, "metrics", map[string]string{"durability": "sync"}); err != nil {
		t.Fatal(err)
	}
	d, err := c.Admin().DescribeTopic(ctx, "metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, pi := range d.Partitions {
		if pi.Durability != "sync" || pi.DurabilityNote != "" {
			t.Errorf("metrics/%d after the alter back to sync: durability %q, note %q; want sync, no note", pi.Partition, pi.Durability, pi.DurabilityNote)
		}
	}

	// The unsafe way: a stream JetStream keeps async.
	qxdtest.CreateTopic(t, c, "legacy", qxd.TopicConfig{})
	stream := semantics.StreamName("legacy", 0)
	recreateAsync(t, ctx, js, stream)
	wantNote := "node test cannot set its store of the partition to sync: " + why + "; the stream was created with JetStream's persist mode async, which its store keeps"
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d, err := c.Admin().DescribeTopic(ctx, "legacy")
		if err != nil {
			t.Fatal(err)
		}
		pi := d.Partitions[0]
		if pi.Durability == "async" && pi.DurabilityNote == wantNote {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("legacy/0: describe shows durability %q, note %q; want async, %q", pi.Durability, pi.DurabilityNote, wantNote)
		}
	}
	_, err = c.Admin().AlterTopicConfig(ctx, "legacy", map[string]string{"durability": "sync"})
	if want := "partition(s) 0 write async (" + wantNote + "); their appends are flushed lazily: a power failure can lose acknowledged records"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("alter to sync where the store stays async: %v, want an error containing %q", err, want)
	}
}

// An alter of a topic with many partitions returns once every partition's store
// writes with the new durability, and the wait asks each partition's writer,
// not JetStream for each partition's state round after round: on one node an
// alter of the durability alone asks JetStream nothing about the streams (their
// limits do not change: the alter leaves them alone); one of a limit reads each
// stream once.
func TestTopicDurabilityAlterManyPartitions(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.Scrub = false // reads streams in the background, not what is counted
	n := qxdtest.StartNodeWith(t, cfg)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)

	const parts = 64
	qxdtest.CreateTopic(t, c, "wide", qxd.TopicConfig{Partitions: parts})
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var infos atomic.Int64 // stream info requests for the topic's partitions
	sub, err := nc.Subscribe(semantics.JSStreamInfoPrefix+".>", func(m *nats.Msg) {
		if topic, _, ok := semantics.ParseStreamName(strings.TrimPrefix(m.Subject, semantics.JSStreamInfoPrefix+".")); ok && topic == "wide" {
			infos.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"async", "sync"} {
		infos.Store(0)
		began := time.Now()
		if _, err := c.Admin().AlterTopicConfig(ctx, "wide", map[string]string{"durability": want}); err != nil {
			t.Fatalf("alter to %s: %v", want, err)
		}
		took := time.Since(began)
		// In effect when the alter returns, without waiting.
		behind := storesBehind(n, "wide", parts, want)
		if len(behind) > 0 {
			t.Errorf("alter to %s returned with partition(s) %s not written %s", want, strings.Join(behind, ", "), want)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		// No stream limit changes: the alter reads no stream.
		if got := infos.Load(); got != 0 {
			t.Errorf("alter to %s: %d stream info requests for the topic's %d partitions, want none", want, got, parts)
		}
		t.Logf("alter to %s: returned after %v, %d stream info requests", want, took, infos.Load())
	}
	// A limit that changes: each stream is read once to update it (and the
	// count sees those reads).
	infos.Store(0)
	if _, err := c.Admin().AlterTopicConfig(ctx, "wide", map[string]string{"retention": "3d"}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := infos.Load(); got != parts {
		t.Errorf("alter of the retention: %d stream info requests for the topic's %d partitions, want one each", got, parts)
	}
	_ = sub.Unsubscribe()
}

// A writer applies a topic's new durability as soon as it sees the topic's
// record change, not at its next background tick (every 100 ms, which an
// alter used to wait for): with the ticks leaving the stores alone, an alter
// still returns with every partition's store writing as asked.
func TestTopicDurabilityAppliedOnChange(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.Scrub = false
	n := qxdtest.StartNodeWith(t, cfg)
	n.SetDurabilityTick(false)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, time.Minute)

	const parts = 8
	qxdtest.CreateTopic(t, c, "prompt", qxd.TopicConfig{Partitions: parts})
	for _, want := range []string{"async", "sync", "async"} {
		began := time.Now()
		if _, err := c.Admin().AlterTopicConfig(ctx, "prompt", map[string]string{"durability": want}); err != nil {
			t.Fatalf("alter to %s with the writers' ticks off: %v", want, err)
		}
		took := time.Since(began)
		behind := storesBehind(n, "prompt", parts, want)
		if len(behind) > 0 {
			t.Errorf("alter to %s returned with partition(s) %s not written %s", want, strings.Join(behind, ", "), want)
		}
		t.Logf("alter to %s: returned after %v", want, took)
	}
}

// A partition stream deleted and created again with JetStream's persist mode
// async (by hand, as an earlier qxd made them) gets a new store, async, while
// the topic is sync: the writer notices before it acknowledges the first append
// that went there, and sets the new store to sync, flushed and fsynced, first.
// Not at its next background tick: the append would be acknowledged unsynced.
func TestTopicDurabilityStoreReplaced(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	js := qxdtest.JetStream(t, n)
	ctx := qxdtest.Context(t, time.Minute)

	const parts = 4
	qxdtest.CreateTopic(t, c, "replaced", qxd.TopicConfig{Partitions: parts})
	p := qxdtest.NewProducer(t, c, qxd.RecordPartition())
	for i := range int32(parts) {
		stream := semantics.StreamName("replaced", i)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if fsyncEach, inPlace, ok := n.StoreDurability(stream); ok && fsyncEach && inPlace {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("partition %d: the store of a new sync topic does not sync", i)
			}
		}
		recreateAsync(t, ctx, js, stream)
		// The writer, which appended nothing yet, expects the stream empty, as
		// the new one is: the append goes through at once.
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: "replaced", Partition: i, Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
		if fsyncEach, inPlace, ok := n.StoreDurability(stream); !ok || !fsyncEach || !inPlace {
			t.Errorf("partition %d: acknowledged an append to a new store that fsyncs each write %t, writes in place %t (found %t), of a sync topic", i, fsyncEach, inPlace, ok)
		}
	}
}
