package server_test

import (
	"testing"
	"time"

	"github.com/qxd-io/qxd/internal/qxdtest"
)

// TestPreVoteLeavesHandOffAndLiveRaft checks the guards of the pre-vote and of
// the move of clients off a node cut from one peer against a real cluster whose
// probes alone look like a cut: a follower of a three-replica partition whose
// probes say the leader's node answers the group's other peer but not this
// one (as when that node's answers to this one come late under load). Its RAFT
// still hears the leader, so the pre-vote must not put the group into observer
// mode, where it would refuse the leadership the leader then hands to it, and
// the follower's node must not count that node unheard, which would send its
// clients away. Once the leader's node stops, its RAFT silence is seen within
// raftUnheardFor and a little.
func TestPreVoteLeavesHandOffAndLiveRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster; skipped with -short")
	}
	nodes, stream, leader, lrn, frns := observedGroup(t, "prevotehandoff")
	for _, rn := range frns {
		rn.SetObserver(false)
	}
	ctx := qxdtest.Context(t, time.Minute)
	follower := nodes[0]
	if follower == leader {
		follower = nodes[1]
	}
	group := lrn.Group()
	frn := follower.RaftNode(group)
	t.Cleanup(func() { frn.SetObserver(false) })
	if follower.PreVoteHoldAsIfCut(group) {
		t.Errorf("the pre-vote held %s on %s in observer mode while its RAFT hears the leader", group, follower.Name())
	}
	if follower.RaftUnheardFrom(leader.Name()) {
		t.Errorf("%s counts %s unheard by its RAFT groups while the cluster is healthy", follower.Name(), leader.Name())
	}

	// The leader hands the group to the follower, as a graceful stop or a
	// leadership move does: the follower takes it. On a loaded machine a hand-off
	// can end with another node elected; the group is handed again from there.
	// The follower is never in observer mode meanwhile.
	handed, from := time.Now(), time.Now()
	if err := lrn.StepDown(frn.ID()); err != nil {
		t.Fatalf("hand %s to %s: %v", group, follower.Name(), err)
	}
	for streamLeader(nodes, stream) != follower.Name() {
		if frn.IsObserver() {
			t.Fatalf("%s is in observer mode for %s while it is handed the leadership", follower.Name(), group)
		}
		now := streamLeader(nodes, stream)
		if time.Since(from) > 20*time.Second {
			t.Fatalf("%s did not take the leadership of %s handed to it within 20 s (observer %v, leader now %q)", follower.Name(), stream, frn.IsObserver(), now)
		}
		if time.Since(handed) > 3*time.Second && now != "" {
			for _, n := range nodes {
				if n.Name() == now {
					t.Logf("%s leads %s 3 s after the hand-off: handed again from there", now, stream)
					if rn := n.RaftNode(group); rn != nil {
						_ = rn.StepDown(frn.ID())
					}
				}
			}
			handed = time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s took %s %v after the first hand-off", follower.Name(), stream, time.Since(from).Round(time.Millisecond))

	// The former leader's node stops: the follower, now leading the group,
	// hears nothing from it.
	if err := leader.Close(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for !follower.RaftUnheardFrom(leader.Name()) {
		if time.Since(stopped) > 8*time.Second {
			t.Fatalf("%s does not count the stopped %s unheard by its RAFT groups 8 s after it stopped", follower.Name(), leader.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s counts %s unheard %v after it stopped", follower.Name(), leader.Name(), time.Since(stopped).Round(time.Millisecond))
}
