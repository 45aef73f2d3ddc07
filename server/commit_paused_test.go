package server_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/groups"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestCommitPastAPausedTopicsLeader pauses (SIGSTOP) the node leading the topics
// bucket while a healthy node coordinates groups and leads the offsets bucket,
// and commits one offset after another at once. Each commit checks its topic's
// record; read from the topics bucket's leader, a commit sent before the bucket
// has elected another leader (about 2 s) would wait leaderReadWait (1 s) for
// the paused one and then read a replica. A commit reads the record from any
// replica instead (the leader's only to confirm a refusal): none may take
// leaderReadWait.
func TestCommitPastAPausedTopicsLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 2*time.Minute)
	const topic, group = "cpaused", "g-cpaused"
	nodes, child, victim, _ := childClusterWithRecords(t, ctx, topic, 10)
	js := qxdtest.JetStream(t, nodes[0])
	nc := js.Conn()
	leadCoordinatorBuckets(ctx, t, js, nodes[0].Name())
	topics := semantics.KVStream(semantics.TopicsBucket)
	qxdtest.LeadStream(ctx, t, nc, topics, victim)
	waitReplicasCurrent(ctx, t, js, topics, victim)

	commit := func(off int64) (time.Duration, error) {
		b, _ := json.Marshal(groups.CommitRequest{Group: group, Generation: -1,
			Offsets: []semantics.OffsetEntry{{Topic: topic, Partition: 0, Offset: off}}})
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		m, err := nc.RequestWithContext(rctx, semantics.GroupSubject(semantics.GroupCommit, group), b)
		took := time.Since(start)
		if err != nil {
			return took, err
		}
		var resp groups.Response
		if err := json.Unmarshal(m.Data, &resp); err != nil {
			return took, err
		}
		return took, resp.Error.Err()
	}
	// The coordinator moves to nodes[0] with the groups bucket: commit until it
	// answers there.
	for i := 0; ; i++ {
		_, err := commit(1)
		if err == nil {
			break
		}
		if i == 100 || ctx.Err() != nil {
			t.Fatalf("commit before the pause: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Signal(syscall.SIGCONT) }()
	qxdtest.WaitStopped(ctx, t, child.Process.Pid)
	paused := time.Now()
	// Each commit may meet the paused replica once (a direct get resent after
	// partition.DirectAttempt, 0.5 s); none waits for the paused leader.
	const commits, bound = 5, time.Second
	var took []time.Duration
	var longest time.Duration
	for i := range int64(commits) {
		d, err := commit(2 + i)
		took = append(took, d.Round(time.Millisecond))
		longest = max(longest, d)
		if err != nil {
			t.Fatalf("commit %d, %v after the pause of %s (topics bucket's leader): %v after %v",
				i, time.Since(paused).Round(time.Millisecond), victim, err, d.Round(time.Millisecond))
		}
	}
	if longest >= bound {
		t.Fatalf("a commit with the topics bucket's leader %s paused took %v (bound %v): %v", victim, longest.Round(time.Millisecond), bound, took)
	}
	t.Logf("commits with the topics bucket's leader %s paused: %v", victim, took)
}

// childClusterWithRecords starts a three-node cluster with one node in a child
// process (clusterWithChild) and a client of it, creates topic (one partition,
// three replicas) and writes records records to it.
func childClusterWithRecords(t *testing.T, ctx context.Context, topic string, records int) ([]*server.Node, *exec.Cmd, string, *qxd.Client) {
	t.Helper()
	nodes, child, victim := clusterWithChild(t, ctx)
	c := qxdtest.ConnectCluster(t, nodes)
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	p := qxdtest.NewProducer(t, c)
	for range records {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	return nodes, child, victim, c
}
