package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// scrubInterval is the scrub interval of the scrub tests' nodes.
const scrubInterval = 2 * time.Second

// TestScrubFindsUnreadDamagedCopy damages one follower's copy of a
// three-replica partition on three nodes (a bit flipped in its block file, or the
// file cut in the middle, while the node is down) and reads nothing: the follower's scrub, reading its own copy
// in the background, finds the flipped batch and records it, and the automatic
// repair rebuilds the copy, after which every copy reads back intact.
func TestScrubFindsUnreadDamagedCopy(t *testing.T) {
	t.Parallel()
	for _, truncate := range []bool{false, true} {
		name := "flipped"
		if truncate {
			name = "truncated"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			scrubFindsDamage(t, truncate)
		})
	}
}

// scrubFindsDamage damages a follower's copy, a bit flipped or (truncate) its
// block file cut in the middle, and waits for the scrub and the repair.
func scrubFindsDamage(t *testing.T, truncate bool) {
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].AutoRepairDelay = autoRepairDelay
		cfgs[i].AutoLeaderRebalance = false // no leadership moves to the damaged copy
		cfgs[i].ScrubInterval = scrubInterval
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	ctx := qxdtest.Context(t, 5*time.Minute)
	a := nodes[0].Admin()
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: "scrubbed", Config: semantics.TopicConfig{Partitions: 1, Replicas: 3}}); err != nil {
		t.Fatal(err)
	}
	marker := "MARKER-" + strings.Repeat("m", 200)
	const batches = 20
	produceMarked(ctx, t, nodes[0], "scrubbed", batches, marker)
	waitInSync(ctx, t, a, "scrubbed", 3)
	vi := followerIndex(ctx, t, a, cfgs, "scrubbed")
	victim := cfgs[vi].Name
	if truncate {
		nodes[vi] = restartTruncated(ctx, t, cfgs, nodes, vi, "scrubbed", marker)
	} else {
		nodes[vi] = restartDamaged(ctx, t, cfgs, nodes, vi, "scrubbed", marker)
	}
	waitInSync(ctx, t, a, "scrubbed", 3)

	// Nobody reads: the victim's scrub finds the damage.
	began := time.Now()
	for nodes[vi].Admin().ScrubStats().Damage == 0 {
		if time.Since(began) > 2*time.Minute {
			d, err := a.DescribeTopic(ctx, "scrubbed")
			t.Fatalf("node %s's scrub found no damage in %v (stats %+v); describe: %+v (%v)", victim, time.Since(began).Round(time.Second),
				nodes[vi].Admin().ScrubStats(), d.Partitions, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("node %s's scrub found the damage %v after the restart (stats %+v)", victim, time.Since(began).Round(time.Millisecond), nodes[vi].Admin().ScrubStats())

	// The automatic repair rebuilds the copy the scrub found damaged.
	waitRepaired(ctx, t, a, nodes, "scrubbed", true)
	t.Logf("rebuilt %v after the restart", time.Since(began).Round(time.Millisecond))
	verifyIntact(ctx, t, a, "scrubbed", batches, "the repair")
}

// TestScrubReadsIntactCopies runs the scrub on one node with intact partitions:
// it completes passes, reads every stored byte, records no damage, keeps where
// it is in the data dir, and leaves no consumer behind.
func TestScrubReadsIntactCopies(t *testing.T) {
	t.Parallel()
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.ScrubInterval = time.Second
	n := qxdtest.StartNodeWith(t, cfg)
	ctx := qxdtest.Context(t, 2*time.Minute)
	a := n.Admin()
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: "intact", Config: semantics.TopicConfig{Partitions: 2, Replicas: 1}}); err != nil {
		t.Fatal(err)
	}
	const batches = 30
	produceMarked(ctx, t, n, "intact", batches, "")
	js := qxdtest.JetStream(t, n)
	s, err := js.Stream(ctx, semantics.StreamName("intact", 0))
	if err != nil {
		t.Fatal(err)
	}
	stored := s.CachedInfo().State.Bytes
	start := a.ScrubStats()
	for {
		st := a.ScrubStats()
		if st.Passes >= start.Passes+2 && st.Batches >= batches {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("scrub stats %+v: want two passes and %d batches read", st, batches)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := a.ScrubStats()
	if st.Damage != 0 || st.Bytes < stored {
		t.Errorf("scrub stats %+v: want no damage and at least the %d bytes stored", st, stored)
	}
	d, err := a.DescribeTopic(ctx, "intact")
	if err != nil || len(d.Partitions[0].Damaged) > 0 {
		t.Errorf("describe after the scrub: %+v, %v; want no damage", d.Partitions, err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "scrub.json"))
	var state struct {
		Next map[string]uint64 `json:"next"`
	}
	if err != nil || json.Unmarshal(b, &state) != nil {
		t.Fatalf("scrub state in the data dir: %q, %v", b, err)
	}
	for l := s.ListConsumers(ctx); ; {
		ci, ok := <-l.Info()
		if !ok {
			break
		}
		if !strings.HasPrefix(ci.Name, "qxd_scrub_") {
			continue
		}
		// A pass may be reading right now: it must end, and its consumer go.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := s.Consumer(ctx, ci.Name); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("scrub consumer %s still there 30s later", ci.Name)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
