package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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
	cfg.Scrub = false
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := qxdtest.Context(t, time.Minute)
	if _, _, err := n.Admin().CreateTopic(ctx, semantics.CreateTopicRequest{Name: topic, Config: semantics.TopicConfig{Partitions: 1, Replicas: 1}}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var stored uint64
	for i := range batches {
		b := buildBatch(t, semantics.NoProducer, fmt.Sprintf("%04d%s", i, strings.Repeat("v", 8<<10)))
		if _, err := produceRaw(t, nc, topic, 0, b); err != nil {
			t.Fatal(err)
		}
		stored += uint64(len(b))
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
