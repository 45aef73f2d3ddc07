package server_test

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qxd-io/qxd/groups/coordinator"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestClaimsWatchMadePastAPausedReplica pauses (SIGSTOP) a node holding a
// replica of the groups bucket while JetStream's meta leader and the bucket's
// leader are healthy, and right away sets up a coordinator's watch of the
// claims (KVStateStore.WatchClaims) several times. The watch is a consumer of
// one replica, which the meta leader places on any replica it counts online,
// the paused one too for seconds; a consumer placed there is never made. A
// coordinator starting on a healthy node waited out the whole request (5 s,
// "watch coordinator claims: context deadline exceeded") and started only then
// (TestMemberCommitPastAPausedCoordinator: commits acknowledged 6.4 s after
// their send in 3 of 4 runs). Each watch must be made within watchBound.
func TestClaimsWatchMadePastAPausedReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 2*time.Minute)
	nodes, child, victim := clusterWithChild(t, ctx)
	js := qxdtest.JetStream(t, nodes[0])
	nc := js.Conn()
	healthy := nodes[0].Name()
	// The meta leader places the consumers: a healthy one.
	for !nodes[0].LeadsMeta() && !nodes[1].LeadsMeta() {
		if err := nodes[0].CampaignMeta(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("JetStream's meta group did not move off %s", victim)
		case <-time.After(time.Second):
		}
	}
	stream := semantics.KVStream(semantics.GroupsBucket)
	qxdtest.LeadStream(ctx, t, nc, stream, healthy)
	waitReplicasCurrent(ctx, t, js, stream, healthy)
	kv, err := js.KeyValue(ctx, semantics.GroupsBucket)
	if err != nil {
		t.Fatal(err)
	}
	store := coordinator.NewKVStateStore(nc, kv)

	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Signal(syscall.SIGCONT) }()
	qxdtest.WaitStopped(ctx, t, child.Process.Pid)
	paused := time.Now()
	// One in three consumers lands on the paused replica while the meta leader
	// counts it caught up: all of eight miss it with a chance of (2/3)^8, 4%.
	// A watch made on the first attempt takes milliseconds, on the second
	// claimWatchAttempt (1 s) more, on the third 2 s more.
	const watches = 8
	const watchBound = 3500 * time.Millisecond
	var wg sync.WaitGroup
	took := make([]time.Duration, watches)
	errs := make([]error, watches)
	for i := range watches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			stop, err := store.WatchClaims(ctx, func(uint64) {})
			took[i], errs[i] = time.Since(start), err
			if err == nil {
				stop()
			}
		}()
	}
	wg.Wait()
	t.Logf("watches made %v after the pause of %s, in %v", time.Since(paused).Round(time.Millisecond), victim, took)
	for i := range watches {
		if errs[i] != nil {
			t.Errorf("watch %d: %v after %v", i, errs[i], took[i].Round(time.Millisecond))
		} else if took[i] > watchBound {
			t.Errorf("watch %d made %v after it was asked for (bound %v)", i, took[i].Round(time.Millisecond), watchBound)
		}
	}
}
