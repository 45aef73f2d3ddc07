package server_test

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestKafkaMetadataAwaitsSilentLeadersSuccessor pauses (SIGSTOP) the node that
// leads partitions of a three-replica topic, and asks a healthy node's Kafka
// Metadata the moment that node counts the paused one silent: the moment the
// nodes start electing successors, and about when the clients of a cut-off
// node, which suspends its Kafka listener then, read the metadata again. The
// answer must name each partition's new leader, with a higher epoch, not the
// silent one: a client told the old leader (or none) reads the metadata again
// only after its MetadataMinAge (franz-go: 5 s), and waits that long. And the
// paused node must not be listed among the brokers.
func TestKafkaMetadataAwaitsSilentLeadersSuccessor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 3*time.Minute)
	const topic = "silent-successor"
	nodes, child, victim, led := kafkaClusterWithChild(t, ctx, topic)
	metadata := func(n *server.Node) *kmsg.MetadataResponse {
		t.Helper()
		return topicMetadata(t, ctx, n.KafkaAddr(), topic)
	}
	// Asked before the pause of one healthy node, after it of the other: the
	// first Metadata that node answers for the topic, which is when it looks up
	// the partitions' RAFT groups (it must not ask the lost leader for them).
	n := nodes[1]
	victimID := int32(-1)
	before := map[int32]int32{} // partition → epoch
	for _, p := range metadata(nodes[0]).Topics[0].Partitions {
		if _, ok := led[semantics.StreamName(topic, p.Partition)]; ok {
			victimID = p.Leader
			before[p.Partition] = p.LeaderEpoch
		}
	}
	if victimID < 0 {
		t.Fatalf("Metadata names no leader for the partitions %s leads", victim)
	}

	paused := time.Now()
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Signal(syscall.SIGCONT) })
	for !n.CountsSilent(victim) {
		if time.Since(paused) > 10*time.Second {
			t.Fatalf("%s does not count the paused %s silent after 10 s", n.Name(), victim)
		}
		time.Sleep(5 * time.Millisecond)
	}
	silent := time.Now()
	resp := metadata(n)
	answered := time.Now()
	t.Logf("%s counts %s silent %v after the pause; Metadata answered %v later", n.Name(), victim,
		silent.Sub(paused).Round(time.Millisecond), answered.Sub(silent).Round(time.Millisecond))
	for _, p := range resp.Topics[0].Partitions {
		epoch, ok := before[p.Partition]
		if !ok {
			continue
		}
		t.Logf("partition %d: leader %d epoch %d (before: %d epoch %d); elected on the nodes: %q", p.Partition, p.Leader, p.LeaderEpoch,
			victimID, epoch, streamLeader(nodes, semantics.StreamName(topic, p.Partition)))
		if p.Leader == victimID || p.Leader < 0 || p.LeaderEpoch <= epoch {
			t.Errorf("partition %d: Metadata asked when %s counted its leader silent names leader %d, epoch %d; want its successor, epoch above %d",
				p.Partition, n.Name(), p.Leader, p.LeaderEpoch, epoch)
		}
	}
	// The silent node is left out of the brokers, as Kafka leaves out a fenced
	// broker: franz-go drops its connections to it, failing what it waits for
	// there, to be sent to the new leaders.
	for _, b := range resp.Brokers {
		if b.NodeID == victimID {
			t.Errorf("Metadata lists the silent %s (broker %d) among the brokers", victim, victimID)
		}
	}
	if d := answered.Sub(silent); d > 2*time.Second {
		t.Errorf("Metadata took %v, want at most 2 s", d.Round(time.Millisecond))
	}
}

// kafkaClusterWithChild is clusterWithChild with a Kafka listener on every node,
// as in a Kafka cluster (a Metadata answer waits for no node's address), and
// topic created with partitions the child leads (led: their streams). The child
// is killed at cleanup.
func kafkaClusterWithChild(t *testing.T, ctx context.Context, topic string) ([]*server.Node, *exec.Cmd, string, map[string]string) {
	t.Helper()
	nodes, child, victim := clusterWithChild(t, ctx, func(cfgs []server.Config) {
		for i := range cfgs {
			cfgs[i].KafkaListen = "127.0.0.1:0"
		}
	})
	c := qxdtest.ConnectCluster(t, nodes)
	return nodes, child, victim, childLedStreams(t, ctx, nodes, c, topic, victim)
}

// topicMetadata asks the Kafka listener at addr for topic's Metadata.
func topicMetadata(t *testing.T, ctx context.Context, addr, topic string) *kmsg.MetadataResponse {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	r, err := cl.SeedBrokers()[0].RetriableRequest(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return r.(*kmsg.MetadataResponse)
}

// TestKafkaMetadataNamesNoLostLeader kills (SIGKILL) the node that leads
// partitions of a three-replica topic, and asks a healthy node's Kafka
// Metadata again and again from the moment that node has no route to the
// killed one until it names every partition's successor. No answer may name
// the killed node leader: the node's own view names it until it hears of the
// successor, while the successor's node names itself, and librdkafka 2.0.2,
// told the new leader, then the lost one, then the new one, stays with the
// lost one's broker (kafka_lost.go). Partitions without a leader are fine:
// clients ask again.
func TestKafkaMetadataNamesNoLostLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 3*time.Minute)
	const topic = "lost-leader"
	nodes, child, victim, led := kafkaClusterWithChild(t, ctx, topic)
	n := nodes[1]
	victimID := int32(-1)
	for _, p := range topicMetadata(t, ctx, n.KafkaAddr(), topic).Topics[0].Partitions {
		if _, ok := led[semantics.StreamName(topic, p.Partition)]; ok {
			victimID = p.Leader
		}
	}
	if victimID < 0 {
		t.Fatalf("Metadata names no leader for the partitions %s leads", victim)
	}

	killed := time.Now()
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for n.HasRouteTo(victim) {
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("%s still has a route to the killed %s after 10 s", n.Name(), victim)
		}
		time.Sleep(time.Millisecond)
	}
	gone := time.Now()
	t.Logf("%s lost its routes to %s %v after the kill", n.Name(), victim, gone.Sub(killed).Round(time.Millisecond))
	for answers := 1; ; answers++ {
		asked := time.Now()
		resp := topicMetadata(t, ctx, n.KafkaAddr(), topic)
		elected := 0
		for _, p := range resp.Topics[0].Partitions {
			if _, ok := led[semantics.StreamName(topic, p.Partition)]; !ok {
				continue
			}
			switch {
			case p.Leader == victimID:
				t.Errorf("answer %d, asked %v after %s lost its routes to %s: partition %d names the killed node leader (epoch %d)",
					answers, asked.Sub(gone).Round(time.Millisecond), n.Name(), victim, p.Partition, p.LeaderEpoch)
			case p.Leader >= 0:
				elected++
			}
		}
		if elected == len(led) {
			t.Logf("answer %d, asked %v after the routes were lost, names every successor", answers, asked.Sub(gone).Round(time.Millisecond))
			return
		}
		if t.Failed() {
			return
		}
		if time.Since(gone) > 20*time.Second {
			t.Fatalf("no successor named for every partition %s led within 20 s (answers: %d)", victim, answers)
		}
	}
}
