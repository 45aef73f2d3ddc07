package server_test

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
)

// TestKafkaMetadataOfWokenNode pauses (SIGSTOP) the node that leads partitions
// of a three-replica topic until the two others have elected successors, wakes
// it (SIGCONT) and asks its own Kafka listener for Metadata at once. Its view
// is stale then: the groups it led name it leader at an old term, or none
// while they step down. The answer must name each partition's leader as the
// cluster elected it: a client told LEADER_NOT_AVAILABLE, or told the woken
// node, reads the metadata again only after its MetadataMinAge (franz-go: 5 s).
func TestKafkaMetadataOfWokenNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 3*time.Minute)
	const topic = "woken"
	nodes, child, victim, led := kafkaClusterWithChild(t, ctx, topic)
	metadata := func(addr string) *kmsg.MetadataResponse {
		t.Helper()
		return topicMetadata(t, ctx, addr, topic)
	}
	// The child's Kafka address, from a healthy node's answer; and one answer
	// of the child's own before the pause, so that it knows the partitions'
	// RAFT groups.
	victimID, victimAddr := int32(-1), ""
	before := map[int32]int32{} // partition → epoch
	resp := metadata(nodes[0].KafkaAddr())
	for _, p := range resp.Topics[0].Partitions {
		if _, ok := led[semantics.StreamName(topic, p.Partition)]; ok {
			victimID = p.Leader
			before[p.Partition] = p.LeaderEpoch
		}
	}
	for _, b := range resp.Brokers {
		if b.NodeID == victimID {
			victimAddr = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		}
	}
	if victimAddr == "" {
		t.Fatalf("Metadata names no leader or no address for the partitions %s leads", victim)
	}
	metadata(victimAddr)

	paused := time.Now()
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	awaitLeaders(t, nodes, led, paused, "the pause")
	// Long enough a pause for the healthy nodes to drop their routes to it
	// (three unanswered pings, every 2 s), as a 15 s pause does: the woken
	// node hears its groups again only once it has routes again.
	time.Sleep(max(0, 10*time.Second-time.Since(paused)))
	if err := child.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	woke := time.Now()
	resp = metadata(victimAddr)
	answered := time.Now()
	t.Logf("paused %v; the woken %s answered Metadata %v after the wake", woke.Sub(paused).Round(time.Millisecond),
		victim, answered.Sub(woke).Round(time.Millisecond))
	for _, p := range resp.Topics[0].Partitions {
		epoch, ok := before[p.Partition]
		if !ok {
			continue
		}
		elected := streamLeader(nodes, semantics.StreamName(topic, p.Partition))
		t.Logf("partition %d: leader %d epoch %d error %d (before: %d epoch %d); elected on the healthy nodes: %q",
			p.Partition, p.Leader, p.LeaderEpoch, p.ErrorCode, victimID, epoch, elected)
		if p.Leader < 0 || p.Leader == victimID || p.LeaderEpoch <= epoch {
			t.Errorf("partition %d: the woken node's Metadata names leader %d, epoch %d; want its successor (%q), epoch above %d",
				p.Partition, p.Leader, p.LeaderEpoch, elected, epoch)
		}
	}
	if d := answered.Sub(woke); d > 2*time.Second {
		t.Errorf("Metadata took %v after the wake, want at most 2 s", d.Round(time.Millisecond))
	}
}
