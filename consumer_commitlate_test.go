package qxd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// TestCommitLeftWaitingByACutKeepsTheLaterOne is issue 18's pair cut with the
// coordinator's buckets split: the groups bucket led by node 1, the offsets
// bucket by node 2, and a cut between the two while node 3 reaches both. A
// member's commit sent during the cut waits in the coordinator (on node 1) for
// the offsets bucket's leader, and its caller gives up; after the heal the
// member commits a later offset, which is stored at once. The commit left
// waiting must not then store its older offset over the later one: in the
// pair-cut drill the group's committed offsets went back 2–3 s after the heal
// (p4 2432 → 342) as the commits sent during the cut were stored.
func TestCommitLeftWaitingByACutKeepsTheLaterOne(t *testing.T) {
	t.Parallel()
	ctx := qxdtest.Context(t, 2*time.Minute)
	// The offsets bucket stays where it is put (automatic leader placement
	// would bring it to node 1).
	nodes, pair := pairCutCluster(ctx, t, func(c *server.Config) { c.AutoLeaderRebalance = false })
	// The client is on node 3, which reaches both sides of the cut.
	c := connectTo(ctx, t, nodes[2].ClientURL(), nodes[2], qxd.ClientRequestTimeout(2*time.Second))
	qxdtest.LeadStream(ctx, t, c.Conn(), semantics.KVStream(semantics.GroupsBucket), nodes[0].Name())
	qxdtest.LeadStream(ctx, t, c.Conn(), semantics.KVStream(semantics.OffsetsBucket), nodes[1].Name())
	// The commit's check of its topic reads the topics bucket: led by node 3, it
	// answers through the cut.
	qxdtest.LeadStream(ctx, t, c.Conn(), semantics.KVStream(semantics.TopicsBucket), nodes[2].Name())
	const topic, group = "commit-late", "commit-late"
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1, Replicas: 3})
	qxdtest.LeadStream(ctx, t, c.Conn(), semantics.StreamName(topic, 0), nodes[2].Name())
	prod := qxdtest.NewProducer(t, c, qxd.Linger(0))
	const records = 30
	for i := range records {
		if err := prod.ProduceSync(ctx, &qxd.Record{Topic: topic, Value: fmt.Appendf(nil, "r%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	cons := qxdtest.NewConsumer(t, c, qxd.Group(group), qxd.AutoCommit(0))
	if err := cons.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	for read := 0; read < records; {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		read += len(recs)
	}
	tp := qxd.TopicPartition{Topic: topic, Partition: 0}
	commit := func(ctx context.Context, off int64) error {
		return cons.CommitOffsets(ctx, map[qxd.TopicPartition]int64{tp: off})
	}
	if err := commit(ctx, 10); err != nil {
		t.Fatalf("commit before the cut: %v", err)
	}

	// Every commit the bucket stores, in order.
	stored := watchCommits(ctx, t, c, semantics.OffsetKey(group, topic, 0))
	// The coordinator's reads of the offsets bucket's leader (a commit reads
	// the stored commit first), which node 3 sees: node 1 sends them to every
	// node with interest.
	gets, err := c.Conn().SubscribeSync(semantics.Subject(semantics.JSStreamMsgGetPrefix, semantics.KVStream(semantics.OffsetsBucket)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gets.Unsubscribe() })
	if err := c.Conn().Flush(); err != nil {
		t.Fatal(err)
	}

	pair.cut()
	cutAt := time.Now()
	// The commit of 20 reaches the coordinator, which cannot reach the
	// offsets bucket's leader; its caller gives up.
	actx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	err = commit(actx, 20)
	cancel()
	if err == nil {
		t.Fatal("a commit during the cut between the coordinator's node and the offsets bucket's leader's was stored")
	}
	t.Logf("commit of 20 during the cut: %v", err)
	// The commit left waiting asks the leader again every 2.1 s
	// (kvscan.LeaderGet): the heal comes just after one of its asks, which it
	// loses, so that the later commit, sent once the routes are back (1–2 s),
	// is stored before its next ask.
	for {
		if _, err := gets.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("the coordinator did not ask the offsets bucket's leader again during the cut: %v", err)
		}
		if time.Since(cutAt) > 1800*time.Millisecond {
			break
		}
	}
	pair.heal()
	healAt := time.Now()
	// The later commit, once node 1 reaches the offsets bucket's leader again.
	on1, err := nats.Connect(nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer on1.Close()
	js1, err := jetstream.New(on1)
	if err != nil {
		t.Fatal(err)
	}
	for {
		ictx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := js1.Stream(ictx, semantics.KVStream(semantics.OffsetsBucket))
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("node 1 does not reach the offsets bucket's leader after the heal: %v", err)
		}
	}
	t.Logf("node 1 reaches the offsets bucket's leader %v after the heal", time.Since(healAt).Round(time.Millisecond))
	for {
		bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := commit(bctx, 30)
		cancel()
		if err == nil {
			break
		}
		t.Logf("commit of 30 after the heal, %v after it: %v (routed %v %v)", time.Since(healAt).Round(time.Millisecond), err, routed(t, nodes[0], nodes[1]), routed(t, nodes[1], nodes[0]))
		if ctx.Err() != nil {
			t.Fatal(err)
		}
	}
	t.Logf("commit of 30 stored %v after the heal, %v after the cut", time.Since(healAt).Round(time.Millisecond), time.Since(cutAt).Round(time.Millisecond))
	// The coordinator gives a commit 10 s (its request deadline): the one left
	// waiting has been stored or dropped by then.
	time.Sleep(time.Until(cutAt.Add(12 * time.Second)))
	got, err := cons.Committed(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	if got[tp].Offset != 30 {
		t.Fatalf("committed offset %d after the later commit of 30: the commit of 20 left waiting by the cut was stored over it (stored since the cut: %s)",
			got[tp].Offset, stored())
	}
	t.Logf("stored since the cut: %s", stored())
}

// watchCommits watches the offsets bucket's key; the function returned lists
// the offsets stored under it from then on, with when.
func watchCommits(ctx context.Context, t *testing.T, c *qxd.Client, key string) func() string {
	t.Helper()
	js, err := jetstream.New(c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, semantics.OffsetsBucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(ctx, key, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop() })
	from := time.Now()
	var mu sync.Mutex
	var seen []string
	go func() {
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			var v struct {
				Offset int64 `json:"offset"`
			}
			_ = json.Unmarshal(e.Value(), &v)
			mu.Lock()
			seen = append(seen, fmt.Sprintf("%d at +%v", v.Offset, time.Since(from).Round(time.Millisecond)))
			mu.Unlock()
		}
	}()
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(seen, ", ")
	}
}

// pairCut cuts the routes between two nodes of a pairCutCluster.
type pairCut struct{ relays []*relay }

// cut makes the two nodes' routes to each other silent, without closing them.
func (p *pairCut) cut() {
	for _, r := range p.relays {
		r.freeze()
	}
}

// heal closes the silent routes (what was sent on them is lost); the nodes
// route to each other again about a second later (nats-server's reconnect
// delay).
func (p *pairCut) heal() {
	for _, r := range p.relays {
		r.thaw()
	}
}

// pairCutCluster starts three nodes whose routes between the first two pass
// through relays, for a cut between those two while the third reaches both.
// The first node is given only the relay to the second as a peer, the third
// only the second: each learns the others' addresses from the routes it has
// (NATS's gossip of routes), the first two each other's relay first. A
// cluster in which the first two route to each other past the relays all the
// same is started again, once.
func pairCutCluster(ctx context.Context, t *testing.T, tune ...func(*server.Config)) ([]*server.Node, *pairCut) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		cfgs := qxdtest.ClusterConfigs(t, 3)
		for i := range cfgs {
			for _, f := range tune {
				f(&cfgs[i])
			}
		}
		to1 := startRelay(t, cfgs[1].ClusterListen)
		to0 := startRelay(t, cfgs[0].ClusterListen)
		p := &pairCut{relays: []*relay{to1, to0}}
		direct := append([]string(nil), cfgs[0].Peers...)
		cfgs[0].Peers = []string{"nats://" + to1.addr()}
		cfgs[1].Peers = []string{"nats://" + to0.addr(), direct[2]}
		cfgs[2].Peers = []string{direct[1]}
		nodes := qxdtest.StartCluster(t, cfgs)
		// Closing the relayed routes first lets the nodes stop without waiting
		// (cleanups run last first).
		t.Cleanup(func() {
			for _, r := range p.relays {
				r.cut()
			}
		})
		for !routed(t, nodes[0], nodes[1]) || !routed(t, nodes[0], nodes[2]) || !routed(t, nodes[1], nodes[2]) {
			if ctx.Err() != nil {
				t.Fatal("the nodes never all routed to each other")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !routesPast(t, nodes[0], p.relays, nodes[1].Name()) && !routesPast(t, nodes[1], p.relays, nodes[0].Name()) {
			return nodes, p
		}
		if attempt == 2 {
			t.Skip("nodes 1 and 2 route to each other past the relays in both clusters started")
		}
		t.Log("nodes 1 and 2 route to each other past the relays; starting another cluster")
		for _, n := range nodes {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = n.Close(cctx)
			cancel()
		}
	}
}

// routed reports whether from has a route to the node named as to.
func routed(t *testing.T, from, to *server.Node) bool {
	t.Helper()
	rz, err := from.NATSServer().Routez(&natsserver.RoutezOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rz.Routes {
		if r.RemoteName == to.Name() {
			return true
		}
	}
	return false
}

// routesPast reports whether a route of n to the node named peer passes none of
// relays.
func routesPast(t *testing.T, n *server.Node, relays []*relay, peer string) bool {
	t.Helper()
	for _, r := range routesPastRelays(t, n, relays) {
		if r.RemoteName == peer {
			return true
		}
	}
	return false
}
