package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// scrubState is the scrub's state file in a node's data dir, as the tests read it.
type scrubState struct {
	Began time.Time         `json:"began"`
	Next  map[string]uint64 `json:"next"`
}

// readScrubState reads the scrub's state file in dir; ok is false when there is
// none yet (or it is being replaced).
func readScrubState(dir string) (scrubState, bool) {
	var st scrubState
	b, err := os.ReadFile(filepath.Join(dir, "scrub.json"))
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, true
}

// storeForScrub starts a node with cfg but the scrub off, stores batches
// batches of about 8 KiB in partition 0 of a new one-partition topic, stops the
// node and returns the bytes of batch data stored.
func storeForScrub(t *testing.T, cfg server.Config, topic string, batches int) uint64 {
	t.Helper()
	return storeSized(t, cfg, topic, 1, batches, 8<<10)[0]
}

// storeSized starts a node with cfg but the scrub off, stores batches batches
// of about size bytes in each partition of a new topic of partitions
// partitions, stops the node and returns the bytes of batch data stored, by
// partition.
func storeSized(t *testing.T, cfg server.Config, topic string, partitions int32, batches, size int) []uint64 {
	t.Helper()
	cfg.Scrub = false
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := qxdtest.Context(t, time.Minute)
	if _, _, err := n.Admin().CreateTopic(ctx, semantics.CreateTopicRequest{Name: topic, Config: semantics.TopicConfig{Partitions: partitions, Replicas: 1}}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stored := make([]uint64, partitions)
	for p := range partitions {
		for i := range batches {
			b := buildBatch(t, semantics.NoProducer, fmt.Sprintf("%04d%s", i, strings.Repeat("v", size)))
			if _, err := produceRaw(t, nc, topic, p, b); err != nil {
				t.Fatal(err)
			}
			stored[p] += uint64(len(b))
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.Close(cctx); err != nil {
		t.Fatal(err)
	}
	return stored
}

// TestScrubRateCapsPace scrubs 512 KiB with a 1 s interval, whose own pace
// would read it in about a second, under a cap of 256 KiB/s: the pass takes at
// least the 2 s the cap allows, from its start (as its state file says) to its
// end. A check of the limiter's behaviour, not a performance target.
func TestScrubRateCapsPace(t *testing.T) {
	t.Parallel()
	const rate = 256 << 10
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.ScrubInterval, cfg.ScrubRate = time.Second, rate
	stored := storeForScrub(t, cfg, "capped", 64)
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := qxdtest.Context(t, time.Minute)
	a := n.Admin()
	var began time.Time
	for a.ScrubStats().Passes == 0 {
		if began.IsZero() {
			if st, ok := readScrubState(cfg.DataDir); ok {
				began = st.Began
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no scrub pass ended: %+v", a.ScrubStats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	took, st := time.Since(began), a.ScrubStats()
	want := time.Duration(float64(stored) / rate * float64(time.Second))
	t.Logf("a pass over %d bytes at most %d bytes/s took %v (at least %v); stats %+v", stored, rate, took.Round(time.Millisecond), want, st)
	if began.IsZero() || st.Bytes < stored {
		t.Fatalf("pass start %v, stats %+v: want a pass seen to begin that read the %d bytes stored", began, st, stored)
	}
	if took < want {
		t.Errorf("a pass over %d bytes took %v under a cap of %d bytes/s: want at least %v", stored, took, rate, want)
	}
}

// TestScrubRateHonouredFromFirstRead scrubs 16 batches of 32 KiB under a cap
// of 64 KiB/s, with a 1 s interval whose own pace would read them in a second:
// from the pass's start on, the scrub never has read more than the cap allows
// plus one second's worth (the pacer's burst). One read may ask for 16 batches:
// charged only after it is made, the first read alone takes 512 KiB. A check of
// the limiter's behaviour over the pass's first 2.5 s, not a performance target.
func TestScrubRateHonouredFromFirstRead(t *testing.T) {
	t.Parallel()
	const rate, burst = 64 << 10, 64 << 10
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.ScrubInterval, cfg.ScrubRate = time.Second, rate
	storeSized(t, cfg, "trickle", 1, 16, 32<<10)
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := qxdtest.Context(t, time.Minute)
	a := n.Admin()
	var began time.Time
	for began.IsZero() {
		if st, ok := readScrubState(cfg.DataDir); ok {
			began = st.Began
		}
		if ctx.Err() != nil {
			t.Fatal("no scrub pass began")
		}
		time.Sleep(time.Millisecond)
	}
	var worst float64 // the most bytes read past what the cap allows since began
	for time.Since(began) < 2500*time.Millisecond {
		read := a.ScrubStats().Bytes
		allowed := rate * time.Since(began).Seconds()
		worst = max(worst, float64(read)-allowed)
		if float64(read) > allowed+burst {
			t.Fatalf("%v into the pass the scrub had read %d bytes under a cap of %d bytes/s: want at most %.0f (the cap's %.0f and a burst of %d)",
				time.Since(began).Round(time.Millisecond), read, rate, allowed+burst, allowed, burst)
		}
		time.Sleep(2 * time.Millisecond)
	}
	st := a.ScrubStats()
	t.Logf("2.5 s into the pass: read %d bytes (%d batches) under a cap of %d bytes/s; at most %.0f bytes ahead of the cap", st.Bytes, st.Batches, rate, worst)
	if st.Batches == 0 {
		t.Errorf("2.5 s into the pass the scrub read nothing (stats %+v): want batches read at the cap's pace", st)
	}
}

// TestScrubResumesAfterRestart stops a node in the middle of a scrub pass and
// starts it again: the scrub goes on with the same pass, its first read of the
// copy starting at the stream sequence the state file kept, not at the first.
func TestScrubResumesAfterRestart(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.ScrubInterval, cfg.ScrubRate = time.Second, 256<<10 // 2 s for the 512 KiB
	stored := storeForScrub(t, cfg, "resumed", 64)
	stream := semantics.StreamName("resumed", 0)
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := qxdtest.Context(t, time.Minute)
	for n.Admin().ScrubStats().Bytes < stored/4 {
		if ctx.Err() != nil {
			t.Fatalf("the scrub did not get going: %+v", n.Admin().ScrubStats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := n.Close(cctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	kept, ok := readScrubState(cfg.DataDir)
	next := kept.Next[stream]
	if !ok || kept.Began.IsZero() || next <= 1 || next > 64 {
		t.Fatalf("state after a stop in mid-pass: %+v (%v); want a pass begun and %s's next sequence past 1 and not past 64", kept, ok, stream)
	}

	n = qxdtest.StartNodeWith(t, cfg)
	js := qxdtest.JetStream(t, n)
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	var first *jetstream.ConsumerConfig
	for first == nil {
		if ctx.Err() != nil {
			t.Fatalf("no scrub consumer after the restart: %+v", n.Admin().ScrubStats())
		}
		for l := s.ListConsumers(ctx); ; {
			ci, ok := <-l.Info()
			if !ok {
				break
			}
			if strings.HasPrefix(ci.Name, "qxd_scrub_") && first == nil {
				first = &ci.Config
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if first.DeliverPolicy != jetstream.DeliverByStartSequencePolicy || first.OptStartSeq != next {
		t.Errorf("the restarted node's scrub reads from %v sequence %d; want the sequence kept, %d", first.DeliverPolicy, first.OptStartSeq, next)
	}
	a := n.Admin()
	for {
		// The state first, then the count: a pass ends by counting itself and
		// only then saves the next pass's state, so a new pass seen in the
		// state with the count still 0 began before the old one ended.
		st, ok := readScrubState(cfg.DataDir)
		if a.ScrubStats().Passes > 0 {
			break
		}
		if ok && !st.Began.Equal(kept.Began) {
			t.Fatalf("the restarted node began a new pass (%v) before it ended the one it stopped in (%v)", st.Began, kept.Began)
		}
		if ctx.Err() != nil {
			t.Fatalf("the pass did not end after the restart: %+v", a.ScrubStats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("stopped at sequence %d of 64; after the restart the scrub read on from %d and ended the pass (stats %+v)", next, first.OptStartSeq, a.ScrubStats())
}

// TestScrubClearsDamageItReadsIntact leaves entries in a one-node partition's
// damage record for batches that read intact (as after a repair, or a copy
// JetStream rebuilt), one naming this node and one naming another, and damages a
// third batch for real: the scrub removes the entry naming this node once it
// has read those sequences of its copy intact, and keeps the real damage and
// the entry naming the node whose copy it did not read.
func TestScrubClearsDamageItReadsIntact(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.ScrubInterval = time.Second
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := qxdtest.Context(t, 2*time.Minute)
	a := n.Admin()
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: "healed", Config: semantics.TopicConfig{Partitions: 1, Replicas: 1}}); err != nil {
		t.Fatal(err)
	}
	marker := "MARKER-" + strings.Repeat("m", 200)
	const batches = 20 // the marker in the batch at stream sequence 11
	produceMarked(ctx, t, n, "healed", batches, marker)
	nodes := []*server.Node{n}
	n = restartDamaged(ctx, t, []server.Config{cfg}, nodes, 0, "healed", marker)
	a = n.Admin()
	me := n.Name()
	stale := []semantics.BatchDamage{
		{Kind: semantics.DamageCorrupt, FromSeq: 3, ToSeq: 3, FromOffset: 6, ToOffset: 8, Node: me, Detail: "the batch fails its checks"},
		{Kind: semantics.DamageUnreadable, FromSeq: 4, ToSeq: 6, FromOffset: 9, ToOffset: 17, Node: me, Detail: "the batches cannot be read"},
		{Kind: semantics.DamageCorrupt, FromSeq: 3, ToSeq: 3, FromOffset: 6, ToOffset: 8, Node: "elsewhere", Detail: "the batch fails its checks"},
	}
	for _, d := range stale {
		if err := a.ReportDamage(ctx, semantics.ReportDamageRequest{Name: "healed", Partition: 0, Damage: d}); err != nil {
			t.Fatal(err)
		}
	}
	damaged := func() []semantics.BatchDamage {
		d, err := a.DescribeTopic(ctx, "healed")
		if err != nil {
			t.Fatal(err)
		}
		return d.Partitions[0].Damaged
	}
	mine := func(ds []semantics.BatchDamage, from uint64) bool {
		return slices.ContainsFunc(ds, func(d semantics.BatchDamage) bool { return d.Node == me && d.FromSeq == from })
	}
	began := time.Now()
	for {
		ds := damaged()
		if !mine(ds, 3) && !mine(ds, 4) && a.ScrubStats().Damage > 0 {
			break
		}
		if time.Since(began) > 30*time.Second {
			t.Fatalf("30s after the restart the damage record is %+v (scrub stats %+v); want the entries of this node's sequences 3 to 6 gone and the scrub's own finding there",
				ds, a.ScrubStats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the scrub cleared what it read intact %v after the restart (stats %+v): %+v", time.Since(began).Round(time.Millisecond), a.ScrubStats(), damaged())
	// Two more passes change nothing of what is left.
	for p := a.ScrubStats().Passes + 2; a.ScrubStats().Passes < p; {
		if ctx.Err() != nil {
			t.Fatalf("no two more passes: %+v", a.ScrubStats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ds := damaged()
	if !slices.ContainsFunc(ds, func(d semantics.BatchDamage) bool { return d.Node == me && d.FromSeq <= 11 && d.ToSeq >= 11 }) {
		t.Errorf("damage record %+v: want this node's damaged batch at sequence 11 still there", ds)
	}
	if !slices.ContainsFunc(ds, func(d semantics.BatchDamage) bool { return d.Node == "elsewhere" }) {
		t.Errorf("damage record %+v: want the entry naming node elsewhere, whose copy this scrub does not read, still there", ds)
	}
	t.Logf("two passes later (%v): %+v", time.Since(began).Round(time.Millisecond), ds)
	if mine(ds, 3) || mine(ds, 4) {
		t.Errorf("damage record %+v: this node's entries for sequences 3 to 6 are back", ds)
	}
}
