package server_test

import (
	"bytes"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/partition"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/kafka"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestDirectReadsPastAPausedReplica pauses (SIGSTOP) a node holding a replica
// of a three-replica partition led by another node, and reads the partition
// through a healthy node with direct gets (partition.Reader.GetAt, a direct
// Reader's Get, and the Kafka listener's fetch read, whose batched direct gets
// any replica answers) in the seconds after, while the healthy nodes still route a share of direct gets to
// the paused one (they drop its route only after 6–8 s). A direct get sent there
// is never answered; each read must still answer, with the leader's bytes,
// after a few partition.DirectAttempts (at most 2 s on average), never after
// the 5 s one direct get waited alone.
func TestDirectReadsPastAPausedReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 3*time.Minute)
	nodes, child, victim := clusterWithChild(t, ctx, func(cfgs []server.Config) { cfgs[0].KafkaListen = "127.0.0.1:0" })
	// Killed before the nodes close (cleanups run last first): a paused peer
	// would hold up their stop.
	t.Cleanup(func() { _ = child.Process.Kill() })
	c := qxdtest.ConnectCluster(t, nodes)
	const topic = "dpaused"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	p := qxdtest.NewProducer(t, c)
	const records = 5
	for i := range records {
		if err := p.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: fmt.Appendf(nil, "v%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := nats.Connect(nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	leader := partition.NewReader(nc, topic, 0, false)
	direct := partition.NewReader(nc, topic, 0, true)
	st, err := leader.StreamInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64][]byte{}
	for seq := st.FirstSeq; seq <= st.LastSeq; seq++ {
		m, err := leader.Get(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		want[seq] = m.Data
	}
	// The fetch read asks the stream's leader for its state: a healthy one.
	if st.Leader == victim {
		stream := leader.Stream
		if err := nodes[0].HandOffVia(ctx, victim, stream, nodes[0].Name()); err != nil {
			t.Fatalf("hand %s over from %s: %v", stream, victim, err)
		}
		for streamLeader(nodes, stream) == "" {
			if ctx.Err() != nil {
				t.Fatalf("%s has no leader among %s and %s", stream, nodes[0].Name(), nodes[1].Name())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Every replica must be in the direct-get group as the node read through
	// sees it (a follower joins once caught up, and may leave it a while after
	// a leader change), so that the paused one is picked about one time in three.
	subject := semantics.Subject(semantics.JSDirectGetPrefix, leader.Stream)
	for !localInterest(t, nodes[0].NATSServer(), subject) || !routedInterest(t, nodes[0].NATSServer(), victim, subject) ||
		!routedInterest(t, nodes[0].NATSServer(), nodes[1].Name(), subject) {
		if ctx.Err() != nil {
			t.Fatalf("%s never saw every replica answer direct gets", nodes[0].Name())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// How long a healthy replica takes to answer here, against DirectAttempt.
	var healthy []time.Duration
	for i := range 200 {
		start := time.Now()
		if _, err := direct.Get(ctx, st.FirstSeq+uint64(i)%(st.LastSeq-st.FirstSeq+1)); err != nil {
			t.Fatal(err)
		}
		healthy = append(healthy, time.Since(start))
	}
	slices.Sort(healthy)
	t.Logf("direct gets before the pause: median %v, 99th percentile %v, slowest %v (DirectAttempt %v)",
		healthy[100], healthy[197], healthy[199], partition.DirectAttempt)

	paused := time.Now()
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	const (
		window = 3 * time.Second // reads start within it, well before the route drop
		// Below the 5 s a direct get waited alone; past it only after ten sends in
		// a row to the paused replica ((1/3)^10 a get).
		bound     = 4900 * time.Millisecond
		meanBound = 2 * time.Second
	)
	var (
		reads, slow   int
		slowest, took time.Duration
		kinds         = [3]string{"GetAt", "direct Get", "Kafka fetch read"}
		kindSlowest   [3]time.Duration
	)
	// Reads go on past the window, up to extended, while none has met the paused
	// replica yet (NATS picks the replica at random).
	const extended = 5 * time.Second
	for ; time.Since(paused) < window || slow == 0 && time.Since(paused) < extended; reads++ {
		seq := st.FirstSeq + uint64(reads)%(st.LastSeq-st.FirstSeq+1)
		start := time.Now()
		var m partition.Msg
		switch reads % 3 {
		case 0:
			m, err = leader.GetAt(ctx, seq) // a direct get first
		case 1:
			m, err = direct.Get(ctx, seq)
		case 2:
			var res kafka.ReadResult
			res, err = nodes[0].KafkaRead(ctx, topic, 0, 0, 1<<20)
			if got := kafkaRecords(res); err == nil && got != records {
				t.Fatalf("read %d: a fetch from offset 0 returned %d records, want %d", reads, got, records)
			}
			m.Seq, m.Data = seq, want[seq]
		}
		d := time.Since(start)
		if err != nil || m.Seq != seq || !bytes.Equal(m.Data, want[seq]) {
			t.Fatalf("read %d of sequence %d: sequence %d, %v (want the leader's bytes)", reads, seq, m.Seq, err)
		}
		if d > bound {
			t.Fatalf("read %d (%s) of sequence %d, %v after the pause of %s, took %v (bound %v)",
				reads, kinds[reads%3], seq, start.Sub(paused).Round(time.Millisecond), victim, d.Round(time.Millisecond), bound)
		}
		kindSlowest[reads%3] = max(kindSlowest[reads%3], d)
		if d >= partition.DirectAttempt {
			slow++
		}
		slowest, took = max(slowest, d), took+d
	}
	t.Logf("%d reads in the %v after the pause: %d took a DirectAttempt or more, slowest %v, mean %v",
		reads, time.Since(paused).Round(time.Millisecond), slow, slowest.Round(time.Millisecond), (took / time.Duration(reads)).Round(time.Millisecond))
	for i, k := range kinds {
		t.Logf("slowest %s: %v", k, kindSlowest[i].Round(time.Millisecond))
	}
	if mean := took / time.Duration(reads); mean > meanBound {
		t.Errorf("reads took %v on average, want at most %v", mean.Round(time.Millisecond), meanBound)
	}
	if slow == 0 {
		t.Fatalf("no read met the paused replica in %d reads", reads)
	}
}

// kafkaRecords counts the records of the batches res holds.
func kafkaRecords(res kafka.ReadResult) int {
	n := 0
	for _, b := range res.Batches {
		if h, err := semantics.PeekBatchHeader(b); err == nil {
			n += int(h.NumRecords)
		}
	}
	return n
}

// localInterest reports whether ns holds a queue subscription of its own on
// subject (its replica's, for a direct-get subject).
func localInterest(t *testing.T, ns *natsserver.Server, subject string) bool {
	t.Helper()
	sz, err := ns.Subsz(&natsserver.SubszOptions{Subscriptions: true, Test: subject})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sz.Subs {
		if s.Subject == subject && s.Queue != "" {
			return true
		}
	}
	return false
}

// routedInterest reports whether ns sees a queue subscription on subject from
// the node named remote, over any of its routes to it.
func routedInterest(t *testing.T, ns *natsserver.Server, remote, subject string) bool {
	t.Helper()
	rz, err := ns.Routez(&natsserver.RoutezOptions{Subscriptions: true, SubscriptionsDetail: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rz.Routes {
		if r.RemoteName != remote {
			continue
		}
		for _, s := range r.SubsDetail {
			if s.Subject == subject && s.Queue != "" {
				return true
			}
		}
	}
	return false
}
