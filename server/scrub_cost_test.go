package server_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestScrubCost measures one unhurried scrub pass over a one-node partition of
// QXD_SCRUB_COST MiB (skipped when unset): its wall time and the CPU time of the
// process (the embedded server included) while it ran. Run it with
// QXD_SCRUB_COST=128 go test -count=1 -v -run TestScrubCost ./server/
func TestScrubCost(t *testing.T) {
	mib, _ := strconv.Atoi(os.Getenv("QXD_SCRUB_COST"))
	if mib <= 0 {
		t.Skip("set QXD_SCRUB_COST to a size in MiB to measure the scrub's cost")
	}
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.Scrub = false
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := qxdtest.Context(t, 10*time.Minute)
	if _, _, err := n.Admin().CreateTopic(ctx, semantics.CreateTopicRequest{Name: "cost", Config: semantics.TopicConfig{Partitions: 1, Replicas: 1}}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	v := strings.Repeat("v", 256<<10)
	for range mib * 2 { // 512 KiB batches
		if _, err := produceRaw(t, nc, "cost", 0, buildBatch(t, semantics.NoProducer, v, v)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := n.Close(cctx); err != nil {
		t.Fatal(err)
	}
	cancel()

	// The pass reads at the bytes stored over the interval: 1s makes it read as
	// fast as it can.
	cfg.Scrub, cfg.ScrubInterval = true, time.Second
	n = qxdtest.StartNodeWith(t, cfg)
	a := n.Admin()
	for a.ScrubStats().Bytes == 0 {
		if ctx.Err() != nil {
			t.Fatal("the scrub did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	began, cpu0 := time.Now(), cpuTime()
	for a.ScrubStats().Passes == 0 {
		if ctx.Err() != nil {
			t.Fatalf("the scrub pass did not end: %+v", a.ScrubStats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	wall, cpu := time.Since(began), cpuTime()-cpu0
	st := a.ScrubStats()
	t.Logf("scrub pass: %d MiB (%d batches) in %v, %.0f MiB/s; process CPU %v (%.1f ms/MiB); damage %d",
		st.Bytes>>20, st.Batches, wall.Round(time.Millisecond), float64(st.Bytes)/(1<<20)/wall.Seconds(), cpu.Round(time.Millisecond),
		float64(cpu.Milliseconds())/(float64(st.Bytes)/(1<<20)), st.Damage)
}

// cpuTime is the user and system CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
