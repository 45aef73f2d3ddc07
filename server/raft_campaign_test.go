package server_test

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestElectionChildNode is not a test: it runs one node (of a cluster, or
// alone) in its own process for the tests that pause or kill it:
// TestKilledLeaderElectedQuickly, TestScrubResumesAfterKill and others
// (qxdtest.RunChildNode, startChildNode).
func TestElectionChildNode(t *testing.T) { qxdtest.RunChildNode(t) }

// childEntry names TestElectionChildNode for qxdtest's child-node helpers.
const childEntry = "TestElectionChildNode"

// startChildNode starts the node of cfg in a child process
// (qxdtest.StartChildNode) and returns it once the node is ready.
func startChildNode(t *testing.T, cfg server.Config) *exec.Cmd {
	t.Helper()
	return qxdtest.StartChildNode(t, childEntry, cfg)
}

// streamLeader returns the name of the node among nodes that leads stream, or "".
func streamLeader(nodes []*server.Node, stream string) string {
	for _, n := range nodes {
		if n.NATSServer().JetStreamIsStreamLeader(natsserver.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return n.Name()
		}
	}
	return ""
}

// clusterWithChild starts a three-node cluster whose third node runs in a child
// process (qxdtest.ClusterWithChild), and returns the two in-process nodes, the
// child and its name; the child is killed before the nodes close. Each of
// edits may change the in-process nodes' configs (the first two of cfgs)
// before they start.
func clusterWithChild(t *testing.T, ctx context.Context, edits ...func(cfgs []server.Config)) ([]*server.Node, *exec.Cmd, string) {
	t.Helper()
	return qxdtest.ClusterWithChild(t, ctx, childEntry, edits...)
}

// childLedStreams creates topic (six partitions, three replicas) on the
// cluster of nodes and the child node victim, writes a record to each
// partition, and returns the streams of the partitions victim leads (one
// handed over to it if it led none), once all their replicas are current, with
// their RAFT groups.
func childLedStreams(t *testing.T, ctx context.Context, nodes []*server.Node, c *qxd.Client, topic, victim string) map[string]string {
	t.Helper()
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 6, Replicas: 3})
	p := qxdtest.NewProducer(t, c)
	for i := range int32(6) {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Partition: i, Value: []byte("before")}); err != nil {
			t.Fatalf("produce to partition %d: %v", i, err)
		}
	}
	js := qxdtest.JetStream(t, nodes[0])
	leaderOf := func(stream string) string {
		s, err := js.Stream(ctx, stream)
		if err != nil || s.CachedInfo().Cluster == nil {
			return ""
		}
		return s.CachedInfo().Cluster.Leader
	}
	var led []string
	for i := range int32(6) {
		if leaderOf(semantics.StreamName(topic, i)) == victim {
			led = append(led, semantics.StreamName(topic, i))
		}
	}
	if len(led) == 0 {
		stream := semantics.StreamName(topic, 0)
		if err := nodes[0].HandOffVia(ctx, leaderOf(stream), stream, victim); err != nil {
			t.Fatalf("hand %s over to %s: %v", stream, victim, err)
		}
		for leaderOf(stream) != victim {
			if ctx.Err() != nil {
				t.Fatalf("%s did not move to %s", stream, victim)
			}
			time.Sleep(50 * time.Millisecond)
		}
		led = []string{stream}
	}
	// Every replica current, so that either survivor may win.
	groups := map[string]string{}
	for _, stream := range led {
		for {
			s, err := js.Stream(ctx, stream)
			current := 0
			if err == nil && s.CachedInfo().Cluster != nil {
				for _, r := range s.CachedInfo().Cluster.Replicas {
					if r.Current {
						current++
					}
				}
			}
			if current == 2 {
				groups[stream] = s.CachedInfo().Cluster.RaftGroup
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: replicas not current", stream)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return groups
}

// awaitLeaders waits until every stream of led has a leader among nodes, logs
// when each came, and returns the last one's time since from.
func awaitLeaders(t *testing.T, nodes []*server.Node, led map[string]string, from time.Time, what string) time.Duration {
	t.Helper()
	pending := map[string]bool{}
	for s := range led {
		pending[s] = true
	}
	var worst time.Duration
	for len(pending) > 0 {
		for s := range pending {
			if who := streamLeader(nodes, s); who != "" {
				took := time.Since(from)
				t.Logf("%s: %s elected %v after %s", s, who, took.Round(time.Millisecond), what)
				worst = max(worst, took)
				delete(pending, s)
			}
		}
		if time.Since(from) > 20*time.Second {
			t.Fatalf("no leader elected within 20s of %s for %v", what, pending)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return worst
}

// TestKilledLeaderElectedQuickly kills (SIGKILL) the node leading partitions of a
// three-replica topic and checks that the two others elect new leaders for them
// within 2.5 s. Without the early campaign (raft_campaign.go) the followers wait
// out their election timers: 4–9 s after the leader's last heartbeat, which came
// at most 1 s before the kill.
func TestKilledLeaderElectedQuickly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 3*time.Minute)
	nodes, child, victim := clusterWithChild(t, ctx)
	c := qxdtest.ConnectCluster(t, nodes)
	led := childLedStreams(t, ctx, nodes, c, "killed", victim)

	killed := time.Now()
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if worst := awaitLeaders(t, nodes, led, killed, "the kill"); worst > 2500*time.Millisecond {
		t.Errorf("the partitions the killed node led had a new leader only %v after the kill, want within 2.5s", worst.Round(time.Millisecond))
	}
}

// TestPausedLeaderElectedQuickly pauses (SIGSTOP) the node leading partitions of
// a three-replica topic while a producer writes to them, and checks that the two
// others elect new leaders within 4 s of the last append they heard from it,
// while their routes to it are still up (nats-server drops a route after three
// unanswered pings, every 2 s: 6–8 s). Left to nats-server, a follower's
// election timer fires 4–9 s after the last append it heard, no sooner; the
// election watch's case (c) calls the election once the paused node has
// answered no probe for 2 s (raft_campaign.go).
func TestPausedLeaderElectedQuickly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 3*time.Minute)
	nodes, child, victim := clusterWithChild(t, ctx)
	c := qxdtest.ConnectCluster(t, nodes)
	const topic = "paused"
	led := childLedStreams(t, ctx, nodes, c, topic, victim)

	// Appends up to the pause, so that the followers' timers were reset just
	// before it.
	var parts []int32
	for i := range int32(6) {
		if _, ok := led[semantics.StreamName(topic, i)]; ok {
			parts = append(parts, i)
		}
	}
	p := qxdtest.NewProducer(t, c)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := p.ProduceSync(pctx, &qxd.Record{Topic: topic, Partition: parts[i%len(parts)], Value: []byte("flowing")})
			cancel()
			if err != nil {
				t.Errorf("produce before the pause: %v", err)
				return
			}
		}
	}()
	time.Sleep(time.Second)
	close(stop)
	<-done
	paused := time.Now()
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// When the followers last heard the paused leader, over each led group.
	time.Sleep(300 * time.Millisecond)
	last := paused
	for _, group := range led {
		for _, n := range nodes {
			rn := n.RaftNode(group)
			if rn == nil {
				t.Fatalf("no RAFT node %s on %s", group, n.Name())
			}
			for _, peer := range rn.Peers() {
				if peer.ID == rn.GroupLeader() && !peer.Last.IsZero() && peer.Last.Before(last) {
					last = peer.Last
				}
			}
		}
	}
	t.Logf("the followers last heard the paused leader %v before the pause", paused.Sub(last).Round(time.Millisecond))
	worst := awaitLeaders(t, nodes, led, last, "the last append heard from the paused leader")
	routed := false
	if rz, err := nodes[0].NATSServer().Routez(&natsserver.RoutezOptions{}); err == nil {
		for _, r := range rz.Routes {
			routed = routed || r.RemoteName == victim
		}
	}
	t.Logf("route from %s to the paused node still up once every partition had a leader: %v", nodes[0].Name(), routed)
	if worst >= 4*time.Second {
		t.Errorf("the partitions the paused node led had a new leader only %v after the last append heard from it, want within 4s (before any follower's election timer)", worst.Round(time.Millisecond))
	}
}

// TestLeaderlessGroupElectedQuickly leaves a three-replica partition's RAFT group
// in the state a leader's step-down on a higher term leaves it in (raft.go,
// processAppendEntryResponse): its leader steps down with no successor and waits
// a whole election timeout (4–9 s), as do its followers, which still name it.
// Here the step-down is the leader's own StepDown with both followers in observer
// mode, so that neither takes the leadership it hands over; they leave observer
// mode as soon as the leader has gone quiet. The group must have a leader within
// 2.5 s of the step-down.
func TestLeaderlessGroupElectedQuickly(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster; skipped with -short")
	}
	nodes, stream, _, lrn, frns := observedGroup(t, "leaderless")
	down := time.Now()
	if err := lrn.StepDown(); err != nil {
		t.Fatalf("step down: %v", err)
	}
	// The followers leave observer mode once the leader has gone quiet: its last
	// message, the leadership handed over, has come (after the step-down) and
	// gone (nothing since for 0.3 s).
	for _, rn := range frns {
		for {
			quiet := false
			for _, peer := range rn.Peers() {
				if peer.ID == lrn.ID() && peer.Last.After(down) && time.Since(peer.Last) >= 300*time.Millisecond {
					quiet = true
				}
			}
			if quiet {
				break
			}
			if time.Since(down) > 2*time.Second {
				t.Fatal("a follower heard nothing from its leader after the step-down within 2s")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, rn := range frns {
		rn.SetObserver(false)
	}
	t.Logf("followers out of observer mode %v after the step-down", time.Since(down).Round(time.Millisecond))
	for streamLeader(nodes, stream) == "" {
		if time.Since(down) > 20*time.Second {
			t.Fatal("no leader within 20s of the step-down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(down)
	t.Logf("%s: %s elected %v after the step-down", stream, streamLeader(nodes, stream), took.Round(time.Millisecond))
	if took > 2500*time.Millisecond {
		t.Errorf("the group had a leader only %v after its leader stepped down, want within 2.5s", took.Round(time.Millisecond))
	}
}

// observedGroup starts a three-node in-process cluster with topic, one partition
// on three replicas holding one record, waits for its RAFT group to settle
// (settledGroup) and puts the group's followers in observer mode, so that they
// take no leadership (until cleanup, or until the test lets them). It returns
// the nodes, the partition's stream, the leading node and its RAFT node, and
// the followers' RAFT nodes.
func observedGroup(t *testing.T, topic string) ([]*server.Node, string, *server.Node, natsserver.RaftNode, []natsserver.RaftNode) {
	t.Helper()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	c := qxdtest.ConnectCluster(t, nodes)
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	ctx := qxdtest.Context(t, 2*time.Minute)
	p := qxdtest.NewProducer(t, c)
	if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	stream := semantics.StreamName(topic, 0)
	group, leader := settledGroup(t, ctx, nodes, stream)
	var followers []natsserver.RaftNode
	for _, n := range nodes {
		if n != leader {
			rn := n.RaftNode(group)
			if rn == nil {
				t.Fatalf("no RAFT node %s on %s", group, n.Name())
			}
			rn.SetObserver(true)
			t.Cleanup(func() { rn.SetObserver(false) })
			followers = append(followers, rn)
		}
	}
	return nodes, stream, leader, leader.RaftNode(group), followers
}

// settledGroup waits until stream has a leader with both other replicas current,
// which has led it for 1.5 s (the leader's node lists its RAFT groups every
// second: a group it has not seen led yet is not one it knows to be current),
// and returns the stream's RAFT group and the leading node.
func settledGroup(t *testing.T, ctx context.Context, nodes []*server.Node, stream string) (string, *server.Node) {
	t.Helper()
	js := qxdtest.JetStream(t, nodes[0])
	var group string
	var leader *server.Node
	for {
		s, err := js.Stream(ctx, stream)
		if err == nil && s.CachedInfo().Cluster != nil {
			ci := s.CachedInfo().Cluster
			current := 0
			for _, r := range ci.Replicas {
				if r.Current {
					current++
				}
			}
			if ci.Leader != "" && current == 2 {
				group = ci.RaftGroup
				for _, n := range nodes {
					if n.Name() == ci.Leader {
						leader = n
					}
				}
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("stream %s: no leader with two current replicas", stream)
		}
		time.Sleep(50 * time.Millisecond)
	}
	lrn := leader.RaftNode(group)
	if lrn == nil {
		t.Fatalf("no RAFT node %s on %s", group, leader.Name())
	}
	// The leader's node lists its RAFT groups every second: a group it has not
	// seen led yet is not one it knows to be current.
	for {
		since := lrn.LeaderSince()
		if since != nil && time.Since(*since) > 1500*time.Millisecond {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s has not led %s for 1.5 s", leader.Name(), stream)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return group, leader
}

// TestSteppedDownLeaderElectedAgainSoon makes a three-replica partition's leader
// step down with no successor, as a peer's higher term does (a node woke from a
// pause: raft.go, processAppendEntryResponse and processVoteRequest), and
// checks that the former leader, whose log no follower's is longer than, leads
// again within 0.4 s: its node's election watch sees the group without a leader
// within ledCheckEvery and makes it campaign after formerLeaderSettle, with a
// short delay. Both followers stay in observer mode throughout, so that only the
// former leader can be elected (and the leadership its StepDown hands over is
// not taken). Without that, the watch makes any group without a leader campaign
// no sooner than 0.3 s after it sees it so, and Campaign's own delay is 0.1–0.8
// s more: 0.4 s at the very least. The best of three step-downs counts, so that a
// starved moment of the machine does not decide.
func TestSteppedDownLeaderElectedAgainSoon(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster; skipped with -short")
	}
	_, stream, leader, lrn, _ := observedGroup(t, "steppeddown")
	best := time.Duration(1<<63 - 1)
	for round := range 3 {
		if round > 0 {
			// The watch makes a group campaign again only 2 s after the last time.
			time.Sleep(2200 * time.Millisecond)
		}
		down := time.Now()
		if err := lrn.StepDown(); err != nil {
			t.Fatalf("step down: %v", err)
		}
		for lrn.State() != natsserver.Leader {
			if time.Since(down) > 20*time.Second {
				t.Fatalf("%s did not lead %s again within 20s of its step-down", leader.Name(), stream)
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(down)
		t.Logf("%s led %s again %v after its step-down", leader.Name(), stream, took.Round(time.Millisecond))
		best = min(best, took)
	}
	if best >= 400*time.Millisecond {
		t.Errorf("the former leader led again %v after its step-down at best, want within 0.4s", best.Round(time.Millisecond))
	}
}
