package server_test

import (
	"context"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/kvscan"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/offsets"
	"github.com/qxd-io/qxd/semantics"
)

// TestMemberCommitPastAPausedCoordinator pauses (SIGSTOP) the node that
// coordinates groups (it leads the groups bucket, and with it the offsets
// bucket) while a member of a group is stable, and a second later the member
// commits, as a member committing on its interval would. The commit first goes
// to the paused coordinator only; the healthy nodes elect a leader of the
// groups bucket (about 2 s) and a coordinator starts there. The member must
// send its commit again as soon as that coordinator starts, not after its
// attempt (3 s): its commit is acknowledged within commitBound. It then
// commits further, and after the paused node wakes, with a copy of the older
// commit queued to it, the offsets bucket's leader must still hold the last
// commit. That check guards the outcome only: it does not make the woken node
// handle its copy before it notices it no longer coordinates (the test passed
// with the epoch fence on commits removed as well);
// TestCommitFencedByCoordinatorEpoch covers the fence.
func TestMemberCommitPastAPausedCoordinator(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 2*time.Minute)
	const topic, group = "mpaused", "g-mpaused"
	nodes, child, victim, c := childClusterWithRecords(t, ctx, topic, 5)
	js := qxdtest.JetStream(t, nodes[0])
	nc := js.Conn()
	leadCoordinatorBuckets(ctx, t, js, victim)
	// The partition's stream is led there as well: a commit past what the
	// member read is checked against the partition's high watermark, which
	// must not wait for the paused leader either (it did: "read its high
	// watermark: … context deadline exceeded after 5.001s").
	qxdtest.LeadStream(ctx, t, nc, semantics.StreamName(topic, 0), victim)
	cons := qxdtest.NewConsumer(t, c, qxd.Group(group), qxd.AutoCommit(0))
	if err := cons.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	tp := qxd.TopicPartition{Topic: topic, Partition: 0}
	commit := func(off int64) (time.Duration, error) {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		err := cons.CommitOffsets(cctx, map[qxd.TopicPartition]int64{tp: off})
		return time.Since(start), err
	}
	// Join (the first poll), then commit until the coordinator on the victim
	// answers: it moved there with the groups bucket.
	for i := 0; ; i++ {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, _ = cons.Poll(pctx)
		cancel()
		if _, err := commit(1); err == nil {
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
	time.Sleep(time.Second)
	// Sent after the pause and before the election, the commit's first copy
	// reaches the paused coordinator only: waiting out its attempt, it could
	// not be acknowledged before 3 s (3.07 s measured). Sent again when the
	// new coordinator starts: 1.18–2.21 s, 2.16 s with -race, on a shared
	// 2-core machine at load 5–16.
	const commitBound = 2800 * time.Millisecond
	d, err := commit(2)
	if err != nil {
		t.Fatalf("commit %v after the pause of the coordinator's node %s: %v after %v",
			time.Since(paused).Round(time.Millisecond), victim, err, d.Round(time.Millisecond))
	}
	if d >= commitBound {
		t.Fatalf("commit sent 1s after the pause of the coordinator's node %s took %v (bound %v; acknowledged %v after the pause)",
			victim, d.Round(time.Millisecond), commitBound, time.Since(paused).Round(time.Millisecond))
	}
	t.Logf("commit sent 1s after the pause of the coordinator's node %s: acknowledged after %v (%v after the pause)",
		victim, d.Round(time.Millisecond), time.Since(paused).Round(time.Millisecond))
	if d, err := commit(3); err != nil {
		t.Fatalf("commit after the new coordinator answered: %v after %v", err, d.Round(time.Millisecond))
	}

	if err := child.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Whatever the woken node does with the copy of commit 2 queued to it,
	// the stored commit must stay 3.
	key := semantics.OffsetKey(group, topic, 0)
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, _, err := kvscan.LeaderGet(rctx, nc, semantics.OffsetsBucket, key)
		cancel()
		if err == nil {
			var got offsets.Committed
			if err := json.Unmarshal(v, &got); err != nil {
				t.Fatal(err)
			}
			if got.Offset != 3 {
				t.Fatalf("after %s woke the offsets bucket's leader holds offset %d (epoch %d); want 3: a deposed coordinator took the commit back",
					victim, got.Offset, got.Epoch)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestCommitCheckPastAPausedPartitionLeader pauses (SIGSTOP) the node leading
// a partition while the group's coordinator runs on a healthy node, and
// consumers that have read nothing of the partition commit offsets in it at
// once. A consumer checks such an offset against the partition's high
// watermark, which it read from the stream's leader: the check waited the
// whole request for the paused leader and failed ("read its high watermark: …
// context deadline exceeded after 5.001s"). A consumer that checked a commit of
// the partition before keeps the high watermark it read (it never goes back):
// its next commits need no read, and are acknowledged within commitBound. One
// that never did reads any replica's last batch: its commit must succeed.
func TestCommitCheckPastAPausedPartitionLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 2*time.Minute)
	const topic, group = "cpaused", "g-cpaused"
	nodes, child, victim, c := childClusterWithRecords(t, ctx, topic, 5)
	js := qxdtest.JetStream(t, nodes[0])
	nc := js.Conn()
	leadCoordinatorBuckets(ctx, t, js, nodes[0].Name())
	stream := semantics.StreamName(topic, 0)
	qxdtest.LeadStream(ctx, t, nc, stream, victim)
	waitReplicasCurrent(ctx, t, js, stream, victim)
	// Consumers of the group that read nothing: their commits are the group's
	// while it has no members.
	checked := qxdtest.NewConsumer(t, c, qxd.Group(group), qxd.AutoCommit(0))
	fresh := qxdtest.NewConsumer(t, c, qxd.Group(group), qxd.AutoCommit(0))
	tp := qxd.TopicPartition{Topic: topic, Partition: 0}
	commit := func(cons *qxd.Consumer, off int64) (time.Duration, error) {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		err := cons.CommitOffsets(cctx, map[qxd.TopicPartition]int64{tp: off})
		return time.Since(start), err
	}
	if d, err := commit(checked, 1); err != nil {
		t.Fatalf("commit before the pause: %v after %v", err, d.Round(time.Millisecond))
	}

	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Signal(syscall.SIGCONT) }()
	qxdtest.WaitStopped(ctx, t, child.Process.Pid)
	// The commit goes to the coordinator on a healthy node: 2-3 ms, 254 ms
	// twice in 8 commits (4 runs, quiet machine).
	const commitBound = 2 * time.Second
	for i, off := range []int64{4, 5} {
		d, err := commit(checked, off)
		if err != nil {
			t.Fatalf("commit %d at offset %d right after the pause of the partition's leader %s: %v after %v",
				i, off, victim, err, d.Round(time.Millisecond))
		}
		t.Logf("commit at offset %d after the pause of the partition's leader %s: acknowledged after %v", off, victim, d.Round(time.Millisecond))
		if d >= commitBound {
			t.Fatalf("commit at offset %d right after the pause of the partition's leader %s took %v (bound %v)",
				off, victim, d.Round(time.Millisecond), commitBound)
		}
	}
	// A direct get that reaches the paused replica costs half a second
	// (partition.DirectAttempt) before the next goes out, and they reach it
	// about half the time: 0.0-2.5 s on a quiet machine, 4.0 s once in CI. No
	// bound on the time, but no error.
	d, err := commit(fresh, 3)
	if err != nil {
		t.Fatalf("commit at offset 3 by a consumer that never read the partition's high watermark, right after the pause of its leader %s: %v after %v",
			victim, err, d.Round(time.Millisecond))
	}
	t.Logf("commit at offset 3 by a consumer that read no high watermark: acknowledged after %v", d.Round(time.Millisecond))
}
