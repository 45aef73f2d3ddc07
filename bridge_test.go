package qxd_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/partitioner"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// plainConn connects a plain nats.go client, as an existing service would.
func plainConn(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect plain NATS client: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// readTopic reads every partition of topic from the start until want records came
// (or 20s passed) and returns them.
func readTopic(t *testing.T, c *qxd.Client, topic string, partitions int32, want int) []qxd.Record {
	t.Helper()
	ctx := qxdtest.Context(t, 20*time.Second)
	cons := c.NewConsumer()
	defer cons.Close()
	var as []qxd.Assignment
	for p := int32(0); p < partitions; p++ {
		as = append(as, qxd.Assignment{Topic: topic, Partition: p, Offset: qxd.AtStart()})
	}
	if err := cons.Assign(ctx, as...); err != nil {
		t.Fatal(err)
	}
	var out []qxd.Record
	for len(out) < want {
		recs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("read %s: %d of %d records, then %v", topic, len(out), want, err)
		}
		out = append(out, recs...)
	}
	return out
}

func header(r qxd.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestBridgeIngest: a plain nats.go publisher on orders.<key> feeds a topic through a
// bridge. Keys land where the SDK's partitioner puts them, in order; headers carry
// over; a request-style publisher's reply names the stored record.
func TestBridgeIngest(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "orders", qxd.TopicConfig{Partitions: 4})
	b := qxd.IngestBridge("orders-in", "orders.*", "orders", "token:2")
	b.Headers = "X-Trace"
	if _, err := c.Admin().CreateBridge(ctx, b); err != nil {
		t.Fatal(err)
	}

	nc := plainConn(t, n.ClientURL())
	const total = 400
	for i := 0; i < total; i++ {
		m := nats.NewMsg(fmt.Sprintf("orders.k%d", i%10))
		m.Data = []byte(fmt.Sprintf("v%d", i))
		m.Header.Set("X-Trace", "t"+strconv.Itoa(i))
		m.Header.Set("X-Dropped", "x")
		if i%100 == 99 { // every hundredth is a request: its reply names the record
			reply, err := nc.RequestMsg(m, 5*time.Second)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			var ack semantics.BridgeAck
			if err := json.Unmarshal(reply.Data, &ack); err != nil || ack.Error != nil {
				t.Fatalf("request %d: reply %q (%v)", i, reply.Data, err)
			}
			if want := partitioner.KafkaPartition([]byte(fmt.Sprintf("k%d", i%10)), 4); ack.Partition != want || ack.Topic != "orders" {
				t.Errorf("request %d acknowledged on %s/%d, want orders/%d", i, ack.Topic, ack.Partition, want)
			}
			if reply.Header.Get(semantics.HeaderOffset) != strconv.FormatInt(ack.Offset, 10) {
				t.Errorf("reply header %s = %q, body offset %d", semantics.HeaderOffset, reply.Header.Get(semantics.HeaderOffset), ack.Offset)
			}
			continue
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}

	recs := readTopic(t, c, "orders", 4, total)
	if len(recs) != total {
		t.Fatalf("topic holds %d records, want %d", len(recs), total)
	}
	last := map[string]int{}
	for _, r := range recs {
		v, _ := strconv.Atoi(strings.TrimPrefix(string(r.Value), "v"))
		key := string(r.Key)
		if key != fmt.Sprintf("k%d", v%10) {
			t.Fatalf("record %s has key %q", r.Value, key)
		}
		if want := partitioner.KafkaPartition(r.Key, 4); r.Partition != want {
			t.Errorf("key %s in partition %d, the SDK's partitioner gives %d", key, r.Partition, want)
		}
		if prev, ok := last[key]; ok && v < prev {
			t.Errorf("key %s: v%d after v%d", key, v, prev)
		}
		last[key] = v
		if header(r, "X-Trace") != "t"+strconv.Itoa(v) || header(r, "X-Dropped") != "" {
			t.Errorf("record v%d headers %v: want X-Trace carried and X-Dropped left out", v, r.Headers)
		}
		if header(r, semantics.HeaderSubject) != "orders."+key {
			t.Errorf("record v%d: %s = %q", v, semantics.HeaderSubject, header(r, semantics.HeaderSubject))
		}
	}

	// A key produced through the SDK lands in the same partition, after the bridged ones.
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	r := &qxd.Record{Topic: "orders", Key: []byte("k3"), Value: []byte("sdk")}
	if err := p.ProduceSync(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, br := range recs {
		if string(br.Key) == "k3" && (br.Partition != r.Partition || br.Offset >= r.Offset) {
			t.Errorf("bridged k3 at %d/%d, SDK k3 at %d/%d", br.Partition, br.Offset, r.Partition, r.Offset)
		}
	}

	d, err := c.Admin().DescribeBridge(ctx, "orders-in")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status == nil || d.Status.Node != n.Name() || d.Status.Messages != total || d.Bridge.Key != "token:2" {
		t.Errorf("describe: %+v status %+v, want it running on %s with %d messages", d.Bridge, d.Status, n.Name(), total)
	}
}

// TestBridgeEgress: legacy subscribers (a queue group and a plain subscription)
// receive a topic's records one NATS message per record, through a reliable and a
// fast egress bridge; SubscribeHandler feeds a nats.MsgHandler as a group member.
func TestBridgeEgress(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "events", qxd.TopicConfig{Partitions: 3})
	for _, b := range []qxd.Bridge{
		qxd.EgressBridge("ev-out", "events", "legacy.events.{key}", ""),
		qxd.EgressBridge("ev-fast", "events", "fast.p{partition}", "fast"),
	} {
		if _, err := c.Admin().CreateBridge(ctx, b); err != nil {
			t.Fatal(err)
		}
	}

	type got struct {
		subject string
		value   string
		key     string
		offset  string
		member  int
	}
	var mu sync.Mutex
	var reliable, fast []got
	nc := plainConn(t, n.ClientURL())
	for member := range 2 { // two members of a legacy queue group
		if _, err := nc.QueueSubscribe("legacy.events.*", "legacy", func(m *nats.Msg) {
			mu.Lock()
			reliable = append(reliable, got{m.Subject, string(m.Data), m.Header.Get(semantics.HeaderKey), m.Header.Get(semantics.HeaderOffset), member})
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nc.Subscribe("fast.>", func(m *nats.Msg) {
		mu.Lock()
		fast = append(fast, got{m.Subject, string(m.Data), m.Header.Get(semantics.HeaderKey), m.Header.Get(semantics.HeaderPartition), 0})
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	const total = 300
	var recs []*qxd.Record
	for i := range total {
		recs = append(recs, &qxd.Record{Topic: "events", Key: fmt.Appendf(nil, "u%d", i%7), Value: fmt.Appendf(nil, "v%d", i),
			Headers: []qxd.Header{{Key: "Origin", Value: []byte("sdk")}}})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	p.Close(ctx)

	waitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reliable) >= total && len(fast) >= total
	})
	time.Sleep(200 * time.Millisecond) // nothing more should come
	mu.Lock()
	defer mu.Unlock()
	if len(reliable) != total || len(fast) != total {
		t.Fatalf("legacy subscribers got %d (reliable) and %d (fast) messages, want %d each", len(reliable), len(fast), total)
	}
	seen := map[string]bool{}
	last := map[string]int{} // per member and key: each member sees a key in order
	for _, g := range reliable {
		if seen[g.value] {
			t.Errorf("%s delivered twice", g.value)
		}
		seen[g.value] = true
		if g.subject != "legacy.events."+g.key {
			t.Errorf("%s on subject %s with key %q", g.value, g.subject, g.key)
		}
		off, _ := strconv.Atoi(g.offset)
		mk := fmt.Sprint(g.member, g.key)
		if prev, ok := last[mk]; ok && off <= prev {
			t.Errorf("member %d, key %s: offset %d after %d", g.member, g.key, off, prev)
		}
		last[mk] = off
	}
	for _, g := range fast {
		if g.subject != "fast.p"+g.offset { // offset holds the partition header here
			t.Errorf("fast: %s on subject %s, partition header %s", g.value, g.subject, g.offset)
		}
	}

	// The handler adapter: one call attaches a nats.MsgHandler to the topic and a group.
	var hmu sync.Mutex
	var handled []*nats.Msg
	h := func(m *nats.Msg) { hmu.Lock(); handled = append(handled, m); hmu.Unlock() }
	sub, err := c.SubscribeHandler(ctx, "legacy-handler", "events", h, qxd.SessionTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { hmu.Lock(); defer hmu.Unlock(); return len(handled) >= total })
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	hmu.Lock()
	m := handled[0]
	if m.Subject != "events" || m.Header.Get("Origin") != "sdk" || m.Header.Get(semantics.HeaderTopic) != "events" || !strings.HasPrefix(string(m.Data), "v") {
		t.Errorf("handler got subject %q headers %v data %q", m.Subject, m.Header, m.Data)
	}
	hmu.Unlock()
	gd, err := c.Admin().DescribeGroup(ctx, "legacy-handler")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range gd.Partitions {
		if p.Committed != p.HighWatermark {
			t.Errorf("handler group: partition %d committed %d, high watermark %d", p.Partition, p.Committed, p.HighWatermark)
		}
	}

	// Deleting the reliable bridge deletes its group.
	if err := c.Admin().DeleteBridge(ctx, "ev-out"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin().DescribeGroup(ctx, semantics.BridgeGroup("ev-out")); err == nil {
		if gs, _ := c.Admin().ListGroups(ctx); slices.ContainsFunc(gs, func(g qxd.GroupSummary) bool { return g.Group == semantics.BridgeGroup("ev-out") }) {
			t.Errorf("group %s still listed after the bridge was deleted", semantics.BridgeGroup("ev-out"))
		}
	}
	bs, _, err := c.Admin().ListBridges(ctx)
	if err != nil || len(bs) != 1 || bs[0].Name != "ev-fast" {
		t.Errorf("list after delete: %v, %v; want ev-fast alone", bs, err)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBridgeBadDefinitions: each bad definition is refused with an error that names
// it, and nothing is stored.
func TestBridgeBadDefinitions(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)
	qxdtest.CreateTopic(t, c, "orders", qxd.TopicConfig{Partitions: 2})
	if _, err := c.Admin().CreateBridge(ctx, qxd.EgressBridge("out", "orders", "shop.orders.{key}", "")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    qxd.Bridge
		kind error
		want string
	}{
		{"overlaps a topic's subjects", qxd.IngestBridge("b1", "qxd.t.orders.>", "orders", ""), semantics.ErrInvalidConfig, "overlaps qxd.>"},
		{"unknown topic", qxd.IngestBridge("b2", "orders.*", "nope", "token:2"), semantics.ErrUnknownTopic, `topic "nope" does not exist`},
		{"token beyond pattern", qxd.IngestBridge("b3", "orders.*", "orders", "token:3"), semantics.ErrInvalidConfig, "token:3 is beyond the pattern"},
		{"loop", qxd.IngestBridge("b4", "shop.orders.*", "orders", "token:3"), semantics.ErrInvalidConfig, "loop back"},
		{"name taken", qxd.IngestBridge("out", "orders.*", "orders", ""), semantics.ErrInvalidRequest, "already exists"},
		{"bad template", qxd.EgressBridge("b5", "orders", "x.{value}", ""), semantics.ErrInvalidConfig, "{value}"},
	}
	for _, tc := range tests {
		_, err := c.Admin().CreateBridge(ctx, tc.b)
		if err == nil || !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CreateBridge = %v, want %v containing %q", tc.name, err, tc.kind, tc.want)
		}
	}
	bs, _, err := c.Admin().ListBridges(ctx)
	if err != nil || len(bs) != 1 {
		t.Errorf("bridges after refused creates: %v, %v; want only 'out'", bs, err)
	}
	if err := c.Admin().DeleteBridge(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("delete of an unknown bridge: %v", err)
	}
}

// runnerNode returns the node running bridge name.
func runnerNode(t *testing.T, c *qxd.Client, nodes []*server.Node, name string) *server.Node {
	t.Helper()
	ctx := qxdtest.Context(t, 20*time.Second)
	for {
		d, err := c.Admin().DescribeBridge(ctx, name)
		if err == nil && d.Status != nil {
			for _, n := range nodes {
				if n.Name() == d.Status.Node {
					return n
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no node runs bridge %s: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBridgeIngestFailover: request-style publishers keep publishing while the node
// running the ingest bridge is killed. Every publish that got a success reply is in
// the topic exactly once, where the reply said; no message is stored twice.
func TestBridgeIngestFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	nodes := qxdtest.StartCluster(t, qxdtest.ClusterConfigs(t, 3))
	t.Logf("cluster started in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { t.Logf("test done after %v", time.Since(start).Round(time.Millisecond)) })
	c := qxdtest.Connect(t, nodes[0])
	ctx := qxdtest.Context(t, 60*time.Second)
	qxdtest.CreateTopic(t, c, "pay", qxd.TopicConfig{Partitions: 3, Replicas: 3})
	for _, b := range []qxd.Bridge{
		qxd.IngestBridge("pay-in", "pay.*", "pay", "token:2"),
		qxd.EgressBridge("pay-out", "pay", "legacy.pay.{key}", "reliable"),
	} {
		if _, err := c.Admin().CreateBridge(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	victim := runnerNode(t, c, nodes, "pay-in")
	var others []*server.Node
	for _, n := range nodes {
		if n != victim {
			others = append(others, n)
		}
	}

	type ack struct {
		partition int32
		offset    int64
	}
	var mu sync.Mutex
	// A legacy subscriber on a surviving node, fed by the reliable egress bridge,
	// which runs on the victim too and must resume from its group's commits.
	delivered := map[string]int{}
	legacy := plainConn(t, others[1].ClientURL())
	if _, err := legacy.Subscribe("legacy.pay.*", func(m *nats.Msg) {
		mu.Lock()
		delivered[string(m.Data)]++
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := legacy.Flush(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]ack{}
	var afterKill int
	var killed bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for pub := range 3 {
		nc := plainConn(t, others[pub%len(others)].ClientURL())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Each attempt is its own message: a retry after a lost reply is a
				// new message, which the bridge may store beside the first.
				val := fmt.Sprintf("p%d-%d", pub, i)
				reply, err := nc.Request(fmt.Sprintf("pay.k%d", i%5), []byte(val), 2*time.Second)
				if err != nil {
					time.Sleep(20 * time.Millisecond) // no responders while the bridge moves
					continue
				}
				var a semantics.BridgeAck
				if json.Unmarshal(reply.Data, &a) != nil || a.Error != nil {
					continue
				}
				mu.Lock()
				acked[val] = ack{a.Partition, a.Offset}
				if killed {
					afterKill++
				}
				mu.Unlock()
			}
		}()
	}
	waitFor(t, 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 150 })
	mu.Lock()
	killed = true
	mu.Unlock()
	killedAt := time.Now()
	victim.NATSServer().Shutdown() // the runner's node dies without stopping its services
	t.Cleanup(func() {             // the dead node's services cannot drain: do not wait for them
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = victim.Close(ctx)
	})
	waitFor(t, 40*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return afterKill >= 150 })
	t.Logf("bridge resumed: 150 acknowledged publishes %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	close(stop)
	wg.Wait()

	survivor := qxdtest.Connect(t, others[0])
	d, err := survivor.Admin().DescribeTopic(ctx, "pay")
	if err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, p := range d.Partitions {
		stored += p.Records
	}
	recs := readTopic(t, survivor, "pay", 3, int(stored))
	count := map[string]int{}
	for _, r := range recs {
		v := string(r.Value)
		count[v]++
		if a, ok := acked[v]; ok && (a.partition != r.Partition || a.offset != r.Offset) {
			t.Errorf("%s acknowledged at %d/%d, stored at %d/%d", v, a.partition, a.offset, r.Partition, r.Offset)
		}
	}
	for v, n := range count {
		if n != 1 {
			t.Errorf("%s stored %d times", v, n)
		}
	}
	for v := range acked {
		if count[v] != 1 {
			t.Errorf("%s acknowledged but stored %d times", v, count[v])
		}
	}
	t.Logf("%d publishes acknowledged, %d records stored", len(acked), len(recs))

	// Egress: every stored record reaches the legacy subscriber, at least once.
	waitFor(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for v := range count {
			if delivered[v] == 0 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	again := 0
	for _, n := range delivered {
		again += n - 1
	}
	mu.Unlock()
	t.Logf("egress delivered every record; %d published again after the failover (at-least-once)", again)
}
