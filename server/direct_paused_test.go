package server_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
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
// of a three-replica partition led by another node, and of the topics and
// partitions buckets, and reads through the healthy nodes with direct gets in
// the seconds after, while the healthy nodes still route a share of direct gets
// to the paused one (they drop its route only after 6–8 s): the partition with
// partition.Reader.GetAt, a direct Reader's Get and the Kafka listener's fetch
// read (whose batched direct gets any replica answers), the topic's record with
// the SDK's lookup (Admin.Topic: the KV get producers and consumers look topics
// up with), and the partition's checkpoint with a node's read of it (a KV
// get; a damage record is read from the bucket's leader). Each kind reads on its own until it has met the paused replica. A
// direct get sent there is never answered; each read must still answer, with
// what the leader holds, after a few partition.DirectAttempts (at most 2 s on
// average), never after the 5 s one direct get waited alone.
func TestDirectReadsPastAPausedReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node in a child process; skipped with -short")
	}
	ctx := qxdtest.Context(t, 3*time.Minute)
	nodes, child, victim := clusterWithChild(t, ctx, func(cfgs []server.Config) { cfgs[0].KafkaListen = "127.0.0.1:0" })
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
	// The fetch read asks the stream's leader for its state: a healthy one, and
	// not the node read through, whose Kafka read would take the partition from
	// its own store (kafka_store.go) and never send a direct get: nodes[1].
	for i := 0; st.Leader != nodes[1].Name(); i++ {
		if ctx.Err() != nil || i == 200 {
			t.Fatalf("%s led by %q, not handed over to %s", leader.Stream, st.Leader, nodes[1].Name())
		}
		if st.Leader != "" && i%40 == 0 {
			if err := nodes[0].HandOffVia(ctx, st.Leader, leader.Stream, nodes[1].Name()); err != nil {
				t.Logf("hand %s over from %s: %v", leader.Stream, st.Leader, err)
			}
		}
		time.Sleep(50 * time.Millisecond)
		if st, err = leader.StreamInfo(ctx); err != nil {
			st.Leader = ""
		}
	}
	// Every replica must be in the direct-get groups as the nodes read through
	// see them (a follower joins once caught up, and may leave it a while after
	// a leader change), so that the paused one is picked about one time in
	// three: the partition's (reads by sequence) on the node the partition is
	// read through, and the topics and partitions buckets' (reads of a key's
	// last entry) on both healthy nodes, the SDK's client being connected to
	// either.
	type group struct {
		node          *server.Node
		test, subject string
	}
	groups := []group{{nodes[0], semantics.Subject(semantics.JSDirectGetPrefix, leader.Stream), semantics.Subject(semantics.JSDirectGetPrefix, leader.Stream)}}
	for _, n := range nodes {
		for _, bucket := range []string{semantics.TopicsBucket, semantics.PartitionsBucket} {
			groups = append(groups, group{n, semantics.KVDirectGetSubject(bucket, "k"),
				semantics.Subject(semantics.JSDirectGetPrefix, semantics.KVStream(bucket), ">")})
		}
	}
	for _, g := range groups {
		ns := g.node.NATSServer()
		for !localInterest(t, ns, g.test, g.subject) || !routedInterest(t, ns, victim, g.subject) ||
			!routedInterest(t, ns, other(nodes, g.node).Name(), g.subject) {
			if ctx.Err() != nil {
				t.Fatalf("%s never saw every replica answer direct gets on %s", g.node.Name(), g.subject)
			}
			time.Sleep(50 * time.Millisecond)
		}
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

	// The metadata reads: the SDK's topic lookup (Admin.Topic, the producers' and
	// consumers' lookup: kvGet, a KV direct get on the topics bucket) through the
	// client's healthy node, and a node's read of a checkpoint (a KV direct get
	// on the partitions bucket). The SDK opens its buckets (a leader's answer)
	// before the pause.
	admin := c.Admin()
	wantTopic, err := admin.Topic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].Admin().CheckpointRecord(ctx, wantTopic.ID, 0); err != nil {
		t.Fatal(err)
	}

	const (
		window = 3 * time.Second // reads start within it, well before the route drop
		// Reads of a kind go on past the window, up to extended, while none of them
		// has met the paused replica yet (NATS picks the replica at random).
		extended = 5 * time.Second
		// Below the 5 s a direct get (or an SDK metadata read's attempt) waited
		// alone; past it only after ten sends in a row to the paused replica
		// ((1/3)^10 a get).
		bound     = 4900 * time.Millisecond
		meanBound = 2 * time.Second
		// Each read's own bound, past which it fails instead of waiting out the
		// test's context (a KV Get under a deadline waits for it).
		readTimeout = 8 * time.Second
	)
	type kind struct {
		name string
		read func(ctx context.Context, i int) error
		// fromLeader: the read goes to the bucket's leader first
		// (kvscan.GetFresh), so it meets the paused replica only when that node
		// leads the bucket; it must still answer within the bounds.
		fromLeader bool
	}
	// check compares a partition read's answer with the leader's bytes.
	check := func(seq uint64, m partition.Msg, err error) error {
		if err != nil || m.Seq != seq || !bytes.Equal(m.Data, want[seq]) {
			return fmt.Errorf("sequence %d: sequence %d, %v (want the leader's bytes)", seq, m.Seq, err)
		}
		return nil
	}
	seqOf := func(i int) uint64 { return st.FirstSeq + uint64(i)%(st.LastSeq-st.FirstSeq+1) }
	kinds := []kind{
		{"GetAt", func(ctx context.Context, i int) error {
			m, err := leader.GetAt(ctx, seqOf(i)) // a direct get first
			return check(seqOf(i), m, err)
		}, false},
		{"direct Get", func(ctx context.Context, i int) error {
			m, err := direct.Get(ctx, seqOf(i))
			return check(seqOf(i), m, err)
		}, false},
		{"Kafka fetch read", func(ctx context.Context, i int) error {
			res, err := nodes[0].KafkaRead(ctx, topic, 0, 0, 1<<20)
			if got := kafkaRecords(res); err == nil && got != records {
				return fmt.Errorf("a fetch from offset 0 returned %d records, want %d", got, records)
			}
			return err
		}, false},
		{"SDK topic lookup", func(ctx context.Context, i int) error {
			got, err := admin.Topic(ctx, topic)
			if err == nil && (got.ID != wantTopic.ID || got.Revision != wantTopic.Revision) {
				return fmt.Errorf("topic %s revision %d, want %s revision %d", got.ID, got.Revision, wantTopic.ID, wantTopic.Revision)
			}
			return err
		}, false},
		{"node's checkpoint read", func(ctx context.Context, i int) error {
			_, err := nodes[0].Admin().CheckpointRecord(ctx, wantTopic.ID, 0)
			return err
		}, true},
	}
	// Each kind reads on its own goroutine, one read after another, so that every
	// kind meets the paused replica in the window.
	type tally struct {
		reads, slow   int
		slowest, took time.Duration
		failed        string
	}
	tallies := make([]tally, len(kinds))
	paused := time.Now()
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for k, kd := range kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tl := &tallies[k]
			for ; time.Since(paused) < window || tl.slow == 0 && !kd.fromLeader && time.Since(paused) < extended; tl.reads++ {
				start := time.Now()
				rctx, cancel := context.WithTimeout(ctx, readTimeout)
				err := kd.read(rctx, tl.reads)
				cancel()
				d := time.Since(start)
				if err != nil {
					tl.failed = fmt.Sprintf("read %d, %v after the pause of %s, failed after %v: %v",
						tl.reads, start.Sub(paused).Round(time.Millisecond), victim, d.Round(time.Millisecond), err)
					return
				}
				if d > bound {
					tl.failed = fmt.Sprintf("read %d, %v after the pause of %s, took %v (bound %v)",
						tl.reads, start.Sub(paused).Round(time.Millisecond), victim, d.Round(time.Millisecond), bound)
					return
				}
				if d >= partition.DirectAttempt {
					tl.slow++
				}
				tl.slowest, tl.took = max(tl.slowest, d), tl.took+d
			}
		}()
	}
	wg.Wait()
	var (
		reads, slow int
		took        time.Duration
	)
	for k, tl := range tallies {
		mean := time.Duration(0)
		if tl.reads > 0 {
			mean = tl.took / time.Duration(tl.reads)
		}
		t.Logf("%s: %d reads, %d took a DirectAttempt or more, slowest %v, mean %v",
			kinds[k].name, tl.reads, tl.slow, tl.slowest.Round(time.Millisecond), mean.Round(time.Millisecond))
		if tl.failed != "" {
			t.Errorf("%s: %s", kinds[k].name, tl.failed)
			continue
		}
		if tl.slow == 0 && !kinds[k].fromLeader {
			t.Errorf("%s: no read met the paused replica in %d reads", kinds[k].name, tl.reads)
		}
		reads, slow, took = reads+tl.reads, slow+tl.slow, took+tl.took
	}
	if reads > 0 {
		t.Logf("%d reads in the %v after the pause: %d took a DirectAttempt or more, mean %v",
			reads, time.Since(paused).Round(time.Millisecond), slow, (took / time.Duration(reads)).Round(time.Millisecond))
		if mean := took / time.Duration(reads); mean > meanBound {
			t.Errorf("reads took %v on average, want at most %v", mean.Round(time.Millisecond), meanBound)
		}
	}
}

// other returns the node of nodes that is not n (of two).
func other(nodes []*server.Node, n *server.Node) *server.Node {
	if nodes[0] == n {
		return nodes[1]
	}
	return nodes[0]
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
// subject (its replica's, for a direct-get subject), which the literal subject
// test matches.
func localInterest(t *testing.T, ns *natsserver.Server, test, subject string) bool {
	t.Helper()
	sz, err := ns.Subsz(&natsserver.SubszOptions{Subscriptions: true, Test: test})
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
