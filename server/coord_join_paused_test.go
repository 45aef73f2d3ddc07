package server_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestMemberJoinPastAPausedCoordinator pauses (SIGSTOP) the node that
// coordinates groups (it leads the groups bucket) and 300 ms later a consumer
// joins a new group. Its join first goes to the paused coordinator only; the
// healthy nodes elect a leader of the groups bucket (about 2 s) and a
// coordinator starts there. A join waits for the rest of its group, so its
// attempt is long (the rebalance timeout plus the session timeout and 10 s,
// 50 s by default): the member must send its join again as soon as the new
// coordinator starts, and be assigned its partition within joinBound.
func TestMemberJoinPastAPausedCoordinator(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 2*time.Minute)
	const topic, group, joining = "jpaused", "g-jpaused", "g-jpaused-new"
	nodes, child, victim, c := childClusterWithRecords(t, ctx, topic, 5)
	js := qxdtest.JetStream(t, nodes[0])
	nc := js.Conn()
	for _, b := range []string{semantics.GroupsBucket, semantics.OffsetsBucket} {
		qxdtest.LeadStream(ctx, t, nc, semantics.KVStream(b), victim)
		waitReplicasCurrent(ctx, t, js, semantics.KVStream(b), victim)
	}
	// A first member commits until the coordinator on the victim answers: it
	// moved there with the groups bucket.
	first := qxdtest.NewConsumer(t, c, qxd.Group(group), qxd.AutoCommit(0))
	if err := first.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	tp := qxd.TopicPartition{Topic: topic, Partition: 0}
	for i := 0; ; i++ {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, _ = first.Poll(pctx)
		cancel()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := first.CommitOffsets(cctx, map[qxd.TopicPartition]int64{tp: 1})
		cancel()
		if err == nil {
			break
		} else if i == 60 || ctx.Err() != nil {
			t.Fatalf("commit before the pause: %v", err)
		}
	}

	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Signal(syscall.SIGCONT) }()
	qxdtest.WaitStopped(ctx, t, child.Process.Pid)
	paused := time.Now()
	time.Sleep(300 * time.Millisecond)

	// Sent 0.3 s after the pause, the join is sent again when the new
	// coordinator starts (2–2.6 s after the pause); the new group's join
	// phase then waits its initial rebalance delay (300 ms), and the member
	// syncs and reads its committed offset. Not sent again, the join waits
	// for the paused coordinator until its attempt ends (50 s).
	const joinBound = 10 * time.Second
	log, lines := qxdtest.FailureLogLines(t)
	jc, err := qxd.Connect(ctx, qxdtest.ClientURLs(nodes), qxd.Logger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(jc.Close)
	cons := qxdtest.NewConsumer(t, jc, qxd.Group(joining), qxd.AutoCommit(0))
	start := time.Now()
	if err := cons.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	for len(cons.Assigned()) == 0 {
		if d := time.Since(start); d > joinBound {
			for _, l := range lines(start, time.Now(), 20, "grp.") {
				t.Log(l)
			}
			t.Fatalf("a member joining 300ms after the pause of the coordinator's node %s has no partition after %v (bound %v)",
				victim, d.Round(time.Millisecond), joinBound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("a member joining 300ms after the pause of the coordinator's node %s: assigned %v after it subscribed (%v after the pause)",
		victim, time.Since(start).Round(time.Millisecond), time.Since(paused).Round(time.Millisecond))
	for _, l := range lines(start, time.Now(), 20, "grp.") {
		t.Log(l)
	}
}
