package server_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestScrubResumesAfterKill kills a node (SIGKILL) in the middle of a scrub
// pass over two partition copies, after the scrub saved that it had read the
// first, and starts it again: the scrub goes on with the same pass from where
// its state file says, the second copy from the sequence kept there, and does
// not read the first copy again. What it read of the second copy since its last
// save is read again.
func TestScrubResumesAfterKill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	const batches = 32
	cfg := qxdtest.NodeConfig(t, t.TempDir())
	cfg.ScrubInterval, cfg.ScrubRate = time.Second, 256<<10 // about 1 s for each copy
	stored := storeSized(t, cfg, "killed", 2, batches, 8<<10)
	first, second := semantics.StreamName("killed", 0), semantics.StreamName("killed", 1)
	ctx := qxdtest.Context(t, 2*time.Minute)

	child := startChildNode(t, cfg)
	for {
		st, ok := readScrubState(cfg.DataDir)
		if ok && st.Next[first] > batches {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the child node's scrub did not save that it read %s: state %+v", first, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	kept, ok := readScrubState(cfg.DataDir)
	if !ok || kept.Began.IsZero() || kept.Next[first] != batches+1 || kept.Next[second] > batches {
		t.Fatalf("state after the kill: %+v (%v); want a pass begun, %s read to its end (next %d) and %s not", kept, ok, first, batches+1, second)
	}
	resumeAt := max(kept.Next[second], 1)

	n := qxdtest.StartNodeWith(t, cfg)
	js := qxdtest.JetStream(t, n)
	streams := map[string]jetstream.Stream{}
	for _, name := range []string{first, second} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		streams[name] = s
	}
	a := n.Admin()
	var seen []string // scrub consumers seen, as stream@start
	for a.ScrubStats().Passes == 0 {
		if st, ok := readScrubState(cfg.DataDir); ok && !st.Began.Equal(kept.Began) {
			t.Fatalf("the restarted node began a new pass (%v) before it ended the one it was killed in (%v)", st.Began, kept.Began)
		}
		for name, s := range streams {
			for l := s.ListConsumers(ctx); ; {
				ci, ok := <-l.Info()
				if !ok {
					break
				}
				if at := fmt.Sprintf("%s@%d", name, ci.Config.OptStartSeq); strings.HasPrefix(ci.Name, "qxd_scrub_") && !slices.Contains(seen, at) {
					seen = append(seen, at)
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("the pass did not end after the restart: %+v (consumers seen %v)", a.ScrubStats(), seen)
		}
		time.Sleep(2 * time.Millisecond)
	}
	read := a.ScrubStats().Bytes // the next pass waits on its pacer before its first read
	t.Logf("killed with %s at sequence %d of %d; after the restart the scrub's consumers were %v and the pass it was killed in ended, reading %d bytes (copies of %d and %d bytes)",
		second, resumeAt, batches, seen, read, stored[0], stored[1])
	if want := fmt.Sprintf("%s@%d", second, resumeAt); len(seen) == 0 || seen[0] != want {
		t.Errorf("after the restart the scrub's consumers were %v; want the first at %s, the sequence its state file kept", seen, want)
	}
	for _, at := range seen {
		if strings.HasPrefix(at, first+"@") {
			t.Errorf("after the restart the scrub read %s again (consumer %s), which its state file said it had read", first, at)
		}
	}
	if resumeAt == 1 && read != stored[1] {
		t.Errorf("the resumed pass read %d bytes; want %d, the copy of %s alone", read, stored[1], second)
	}
}
