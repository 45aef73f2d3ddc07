package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// autoRepairDelay is the repair delay of the automatic repair tests' nodes.
const autoRepairDelay = 2 * time.Second

// TestAutoRepairRebuildsDamagedCopy damages one follower's copy of a
// three-replica partition on three nodes (a bit flipped in its block file while
// the node is down), lets a verify of that copy record the damage, and waits: the
// cluster rebuilds the copy on its own (no repair request), after which every
// copy reads back intact and no damage is recorded. A one-replica partition's
// damage record stays, and its stream is not touched.
func TestAutoRepairRebuildsDamagedCopy(t *testing.T) {
	t.Parallel()
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].AutoRepairDelay = autoRepairDelay
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	ctx := qxdtest.Context(t, 5*time.Minute)
	a := nodes[0].Admin()
	for _, tc := range []semantics.CreateTopicRequest{
		{Name: "auto", Config: semantics.TopicConfig{Partitions: 1, Replicas: 3}},
		{Name: "single", Config: semantics.TopicConfig{Partitions: 1, Replicas: 1}},
	} {
		if _, _, err := a.CreateTopic(ctx, tc); err != nil {
			t.Fatal(err)
		}
	}
	marker := "MARKER-" + strings.Repeat("m", 200)
	const batches = 20
	produceMarked(ctx, t, nodes[0], "auto", batches, marker)
	produceMarked(ctx, t, nodes[0], "single", 3, "")
	single := reportSingleDamage(ctx, t, a, "single")

	vi := followerIndex(ctx, t, a, cfgs, "auto")
	victim := cfgs[vi].Name
	nodes[vi] = restartDamaged(ctx, t, cfgs, nodes, vi, "auto", marker)
	waitInSync(ctx, t, a, "auto", 3)

	// A verify of the victim's copy finds the flipped bit and records it.
	v, err := a.VerifyOnNode(ctx, "auto", 0, victim)
	if err != nil || len(v.Damage) == 0 {
		t.Fatalf("verify of node %s's damaged copy: damage %+v, %v; want the flipped batch found", victim, v.Damage, err)
	}
	t.Logf("verify of node %s's copy found: %s", victim, v.Damage[0].Detail)
	if d, err := a.DescribeTopic(ctx, "auto"); err != nil || len(d.Partitions[0].Damaged) == 0 {
		t.Fatalf("describe right after the verify: %+v, %v; want the damage it found recorded", d.Partitions, err)
	}

	began := time.Now()
	waitRepaired(ctx, t, a, nodes, "auto", false)
	t.Logf("the damage record was cleared %v after the verify", time.Since(began).Round(time.Millisecond))
	verifyIntact(ctx, t, a, "auto", batches, "the automatic repair")
	if c := repairCounts(nodes); c[server.RepairRebuilt] == 0 {
		t.Errorf("repair counts over the nodes: %v; want a copy rebuilt", c)
	}

	// The one-replica partition: reported, never touched.
	d, err := a.DescribeTopic(ctx, "single")
	if err != nil || len(d.Partitions[0].Damaged) == 0 {
		t.Errorf("describe of the one-replica topic after the repair: %+v, %v; want its damage (node %s) still recorded", d.Partitions, err, single)
	}
	s, err := qxdtest.JetStream(t, nodes[0]).Stream(ctx, semantics.StreamName("single", 0))
	if err != nil || s.CachedInfo().Config.Replicas != 1 {
		t.Errorf("the one-replica partition's stream: %v; want it left at 1 replica", err)
	}
}

// TestAutoRepairRestoresReplicas leaves a three-replica partition on three nodes
// as a repair interrupted between its scale-down and its scale-up leaves it
// (scaled down to two replicas, the third node's copy removed): describe says it
// is under-replicated, and the cluster scales it back to three on its own, or,
// with the automatic repair off, a repair request does; the new copy reads back
// whole.
func TestAutoRepairRestoresReplicas(t *testing.T) {
	inBothAutoModes(t, restoresReplicas)
}

func restoresReplicas(t *testing.T, auto bool) {
	ctx := qxdtest.Context(t, 5*time.Minute)
	const batches = 20
	cfgs, nodes, a := repairCluster(ctx, t, auto, "short", batches)
	victim := cfgs[followerIndex(ctx, t, a, cfgs, "short")].Name
	stream := semantics.StreamName("short", 0)

	// The first half of a repair without a node to spare, then nothing.
	js := qxdtest.JetStream(t, nodes[0])
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Replicas = 2
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(nodes[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	body, _ := json.Marshal(map[string]string{"peer": victim})
	for {
		m, err := nc.RequestWithContext(ctx, semantics.Subject(semantics.JSStreamPeerRemovePrefix, stream), body)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Error *struct {
				ErrCode int `json:"err_code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(m.Data, &out)
		if out.Error == nil || out.Error.ErrCode == 10040 { // removed, or no longer a member
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("partition short/0 scaled down to 2 replicas and node %s's copy removed", victim)

	sawShort := false
	began := time.Now()
	for {
		d, err := a.DescribeTopic(ctx, "short")
		if err == nil {
			p := d.Partitions[0]
			if strings.Contains(p.Problem, "under-replicated") {
				if !sawShort {
					t.Logf("describe while short: %s", p.Problem)
				}
				sawShort = true
			}
			if sawShort && len(p.InSync) == 3 && p.Problem == "" {
				break
			}
			if sawShort && !auto {
				resp, err := a.RepairPartition(ctx, semantics.RepairPartitionRequest{Name: "short", Partition: 0})
				if err != nil || resp.Node != "" || resp.Rebuilt != victim || len(resp.Replicas) != 3 || resp.Batches != batches {
					t.Fatalf("repair of the partition short of a replica: %+v, %v; want it scaled back up, the new copy on node %s with %d batches", resp, err, victim, batches)
				}
				t.Logf("repair request: %+v", resp)
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("the partition was not scaled back: describe says %+v (%v); saw it under-replicated: %t", d.Partitions, err, sawShort)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("scaled back to 3 replicas %v after the scale-down", time.Since(began).Round(time.Millisecond))
	if s, err := js.Stream(ctx, stream); err != nil || s.CachedInfo().Config.Replicas != 3 {
		t.Fatalf("the stream after the restore: %v; want 3 replicas configured", err)
	}
	if c := repairCounts(nodes); c[server.RepairRestored] == 0 {
		t.Errorf("repair counts over the nodes: %v; want a partition restored", c)
	}
	verifyIntact(ctx, t, a, "short", batches, "the restore")
}

// verifyIntact checks that each node's copy of partition 0 of topic reads back
// with batches batches and no damage; after names what came before, for the errors.
func verifyIntact(ctx context.Context, t *testing.T, a *server.Admin, topic string, batches uint64, after string) {
	t.Helper()
	for _, n := range []string{"n1", "n2", "n3"} {
		v, err := a.VerifyOnNode(ctx, topic, 0, n)
		if err != nil || len(v.Damage) > 0 || v.Batches != batches {
			t.Errorf("verify of node %s's copy after %s: %d batches, damage %+v, %v; want %d intact", n, after, v.Batches, v.Damage, err, batches)
		}
	}
}

// waitRepaired waits until partition 0 of topic has no damage recorded and three
// replicas in sync and, with rebuilt, until a node has counted a copy rebuilt.
func waitRepaired(ctx context.Context, t *testing.T, a *server.Admin, nodes []*server.Node, topic string, rebuilt bool) {
	t.Helper()
	for {
		d, err := a.DescribeTopic(ctx, topic)
		if err == nil && len(d.Partitions[0].Damaged) == 0 && len(d.Partitions[0].InSync) == 3 &&
			(!rebuilt || repairCounts(nodes)[server.RepairRebuilt] > 0) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("no automatic repair of %s/0: describe says %+v (%v), repairs %v", topic, d.Partitions, err, repairCounts(nodes))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// produceMarked appends batches batches to partition 0 of topic through node n,
// the middle one holding marker (when not "").
func produceMarked(ctx context.Context, t *testing.T, n *server.Node, topic string, batches int, marker string) {
	t.Helper()
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i := range batches {
		v := fmt.Sprintf("batch %02d %0150d", i, i)
		if i == batches/2 && marker != "" {
			v = marker
		}
		if _, err := produceRaw(t, nc, topic, 0, buildBatch(t, semantics.NoProducer, "a", v, "c")); err != nil {
			t.Fatal(err)
		}
	}
}

// reportSingleDamage records damage on the leader's copy of partition 0 of topic
// as a reader would, and returns that node.
func reportSingleDamage(ctx context.Context, t *testing.T, a *server.Admin, topic string) string {
	t.Helper()
	d, err := a.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	node := d.Partitions[0].Leader
	dm := semantics.BatchDamage{Kind: semantics.DamageCorrupt, FromSeq: 2, ToSeq: 2, FromOffset: 3, ToOffset: 5, Node: node, Detail: "the batch fails its checks"}
	if err := a.ReportDamage(ctx, semantics.ReportDamageRequest{Name: topic, Partition: 0, Damage: dm}); err != nil {
		t.Fatal(err)
	}
	return node
}

// followerIndex returns the index in cfgs of a node, not the first, that follows
// partition 0 of topic.
func followerIndex(ctx context.Context, t *testing.T, a *server.Admin, cfgs []server.Config, topic string) int {
	t.Helper()
	d, err := a.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(cfgs); i++ {
		if cfgs[i].Name != d.Partitions[0].Leader {
			return i
		}
	}
	t.Fatalf("no follower of %s/0 among %d nodes", topic, len(cfgs))
	return -1
}

// restartDamaged stops node vi, flips a bit of marker in its copy of partition 0
// of topic, and starts it again.
func restartDamaged(ctx context.Context, t *testing.T, cfgs []server.Config, nodes []*server.Node, vi int, topic, marker string) *server.Node {
	t.Helper()
	return restartWithBlock(ctx, t, cfgs, nodes, vi, topic, marker, func(path string, b []byte, at int) error {
		b[at+len(marker)/2] ^= 0x08
		return os.WriteFile(path, b, 0o640)
	})
}

// restartTruncated stops node vi, cuts its block file of partition 0 of topic
// where marker begins, and starts it again.
func restartTruncated(ctx context.Context, t *testing.T, cfgs []server.Config, nodes []*server.Node, vi int, topic, marker string) *server.Node {
	t.Helper()
	return restartWithBlock(ctx, t, cfgs, nodes, vi, topic, marker, func(path string, _ []byte, at int) error {
		return os.Truncate(path, int64(at))
	})
}

// restartWithBlock stops node vi, hands damage the first block file of its copy
// of partition 0 of topic that holds marker (its path, its bytes and where marker
// begins in them), and starts the node again.
func restartWithBlock(ctx context.Context, t *testing.T, cfgs []server.Config, nodes []*server.Node, vi int, topic, marker string,
	damage func(path string, b []byte, at int) error) *server.Node {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := nodes[vi].Close(cctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	stream := semantics.StreamName(topic, 0)
	blks, err := filepath.Glob(filepath.Join(cfgs[vi].DataDir, "jetstream", "$G", "streams", stream, "msgs", "*.blk"))
	if err != nil || len(blks) == 0 {
		t.Fatalf("no block files of %s on node %s (%v)", stream, cfgs[vi].Name, err)
	}
	for _, path := range blks {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if at := bytes.Index(b, []byte(marker)); at >= 0 {
			if err := damage(path, b, at); err != nil {
				t.Fatal(err)
			}
			return qxdtest.StartNodeWith(t, cfgs[vi])
		}
	}
	t.Fatalf("no block file of %s on node %s holds the marker", stream, cfgs[vi].Name)
	return nil
}

// waitInSync waits until partition 0 of topic has a leader and n replicas in sync.
func waitInSync(ctx context.Context, t *testing.T, a *server.Admin, topic string, n int) {
	t.Helper()
	for {
		d, err := a.DescribeTopic(ctx, topic)
		if err == nil && d.Partitions[0].Leader != "" && len(d.Partitions[0].InSync) == n {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s/0 does not get %d replicas in sync: %+v (%v)", topic, n, d.Partitions, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// repairCounts sums the nodes' repair counts.
func repairCounts(nodes []*server.Node) map[string]uint64 {
	sum := map[string]uint64{}
	for _, n := range nodes {
		for k, v := range n.Admin().RepairCounts() {
			sum[k] += v
		}
	}
	return sum
}

// TestKafkaReadRecordsDamageMetMidRead damages one batch in the middle of one
// node's copy of a three-replica partition, with that node leading the
// partition or following it. Kafka reads through it from the start use batched
// direct gets, which any replica answers: one answered by the damaged copy stops
// before the damaged batch. The damage it met must be recorded, naming the node,
// even though the next reads (answered by healthy copies) return every record
// intact.
func TestKafkaReadRecordsDamageMetMidRead(t *testing.T) {
	t.Parallel()
	for _, role := range []string{"leader", "follower"} {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			kafkaReadMeetsDamage(t, role == "leader")
		})
	}
}

func kafkaReadMeetsDamage(t *testing.T, leads bool) {
	cfgs := manualRepairConfigs(t)
	for i := range cfgs {
		cfgs[i].KafkaListen = "127.0.0.1:0"
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	ctx := qxdtest.Context(t, 3*time.Minute)
	a := nodes[0].Admin()
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: "kread", Config: semantics.TopicConfig{Partitions: 1, Replicas: 3}}); err != nil {
		t.Fatal(err)
	}
	marker := "MARKER-" + strings.Repeat("m", 200)
	const batches = 20
	produceMarked(ctx, t, nodes[0], "kread", batches, marker)
	waitInSync(ctx, t, a, "kread", 3)
	vi := followerIndex(ctx, t, a, cfgs, "kread")
	victim := cfgs[vi].Name
	nodes[vi] = restartDamaged(ctx, t, cfgs, nodes, vi, "kread", marker)
	waitInSync(ctx, t, a, "kread", 3)
	stream := semantics.StreamName("kread", 0)
	for {
		d, err := a.DescribeTopic(ctx, "kread")
		if err == nil && d.Partitions[0].Leader != "" && (d.Partitions[0].Leader == victim) == leads {
			break
		}
		if err == nil && d.Partitions[0].Leader != "" {
			prefer := victim
			if !leads {
				prefer = cfgs[0].Name
			}
			_ = nodes[0].HandOffVia(ctx, d.Partitions[0].Leader, stream, prefer)
		}
		if ctx.Err() != nil {
			t.Fatalf("the leadership of %s does not move as wanted (node %s leading: %t)", stream, victim, leads)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Followers answer direct gets again a few seconds after a leader change:
	// read for a while.
	short := 0
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end) && short < 3; time.Sleep(100 * time.Millisecond) {
		res, err := nodes[vi].KafkaRead(ctx, "kread", 0, 0, 1<<20)
		if err != nil {
			t.Fatalf("Kafka read through node %s: %v", victim, err)
		}
		if len(res.Batches) < batches {
			short++
		}
	}
	if short == 0 {
		t.Skip("no read was answered by the damaged copy: inconclusive")
	}
	if r, _ := nodes[vi].KafkaFetchReads(); leads && r.Store == 0 {
		t.Fatalf("the leader read %d batches through NATS and none from its own store", r.NATS)
	}
	// A follower's copy is read again in the background.
	var d server.TopicDescription
	for deadline := time.Now().Add(time.Minute); ; {
		var err error
		d, err = a.DescribeTopic(ctx, "kread")
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(d.Partitions[0].Damaged, func(x semantics.BatchDamage) bool { return x.Node == victim }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Kafka reads through node %s (leading: %t) stopped at its damaged batch, yet its damage record is %+v; want the damage recorded naming node %s",
				short, victim, leads, d.Partitions[0].Damaged, victim)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d reads stopped at the damaged batch; recorded: %s", short, d.Partitions[0].Damage)
	for _, x := range d.Partitions[0].Damaged {
		if x.Node != victim {
			t.Errorf("damage recorded on node %s, whose copy is intact: %+v", x.Node, x)
		}
	}
}

// TestAutoRepairClearsDamageOfCopyGone leaves an entry in the damage record of
// a three-replica partition on three nodes that names a node holding no copy of
// it (a node that left the cluster, or whose replica moved to another node):
// there is nothing to rebuild, and every copy the partition has reads back
// intact, so the cluster removes the entry on its own, or, with the automatic
// repair off, a repair request does. Before, a repair of that node's copy was
// refused (the node holds no copy), the automatic one tried again every ten
// delays, and the partition stayed shown damaged.
func TestAutoRepairClearsDamageOfCopyGone(t *testing.T) {
	inBothAutoModes(t, clearsDamageOfCopyGone)
}

func clearsDamageOfCopyGone(t *testing.T, auto bool) {
	ctx := qxdtest.Context(t, 2*time.Minute)
	const batches = 10
	_, nodes, a := repairCluster(ctx, t, auto, "moved", batches)
	const away = "n9" // holds no copy: not in the cluster
	dm := semantics.BatchDamage{Kind: semantics.DamageCorrupt, FromSeq: 2, ToSeq: 2, FromOffset: 3, ToOffset: 5, Node: away, Detail: "the batch fails its checks"}
	if err := a.ReportDamage(ctx, semantics.ReportDamageRequest{Name: "moved", Partition: 0, Damage: dm}); err != nil {
		t.Fatal(err)
	}
	// Every node shows the entry (each may read the record from its own
	// replica), so that none reads it empty before it is cleared.
	damaged := func(want bool) bool {
		for _, n := range nodes {
			if d, err := n.Admin().DescribeTopic(ctx, "moved"); err != nil || (len(d.Partitions[0].Damaged) > 0) != want {
				return false
			}
		}
		return true
	}
	for !damaged(true) {
		if ctx.Err() != nil {
			t.Fatal("the damage reported is not shown by every node")
		}
		time.Sleep(10 * time.Millisecond)
	}
	began := time.Now()
	if !auto {
		resp, err := a.RepairPartition(ctx, semantics.RepairPartitionRequest{Name: "moved", Partition: 0})
		t.Logf("repair request after %v: %+v, %v", time.Since(began).Round(time.Millisecond), resp, err)
		if err != nil || resp.Node != away || resp.Rebuilt != "" || len(resp.Verified) != 3 || len(resp.Replicas) != 3 {
			t.Fatalf("repair of partition moved/0, whose damage record names node %s only: %+v, %v; want node %s's entries cleared, nothing rebuilt, the three copies verified",
				away, resp, err, away)
		}
	}
	for !damaged(false) {
		if time.Since(began) > time.Minute { // a try that does not complete waits ten delays
			d, err := a.DescribeTopic(ctx, "moved")
			t.Fatalf("a minute after damage was recorded naming node %s, which holds no copy of moved/0: describe says %+v (%v), repairs %v",
				away, d.Partitions, err, repairCounts(nodes))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the entry naming node %s, which holds no copy of moved/0, was cleared %v after it was recorded (delay %v); repairs %v",
		away, time.Since(began).Round(time.Millisecond), autoRepairDelay, repairCounts(nodes))
	if c := repairCounts(nodes); len(c) > 0 {
		t.Errorf("repair counts over the nodes: %v; want none: no copy dropped or rebuilt", c)
	}
}

// inBothAutoModes runs f as two parallel subtests: with the automatic repair on,
// and off (a repair request does the work).
func inBothAutoModes(t *testing.T, f func(t *testing.T, auto bool)) {
	t.Parallel()
	for _, auto := range []bool{true, false} {
		t.Run(fmt.Sprintf("auto=%t", auto), func(t *testing.T) {
			t.Parallel()
			f(t, auto)
		})
	}
}

// repairCluster starts three nodes with the automatic repair on or off (after
// autoRepairDelay), creates topic with one partition on all three, stores
// batches marked batches in it and waits until every replica holds them.
func repairCluster(ctx context.Context, t *testing.T, auto bool, topic string, batches int) ([]server.Config, []*server.Node, *server.Admin) {
	t.Helper()
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].AutoRepairDelay = autoRepairDelay
		cfgs[i].AutoRepair = auto
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	a := nodes[0].Admin()
	if _, _, err := a.CreateTopic(ctx, semantics.CreateTopicRequest{Name: topic, Config: semantics.TopicConfig{Partitions: 1, Replicas: 3}}); err != nil {
		t.Fatal(err)
	}
	produceMarked(ctx, t, nodes[0], topic, batches, "")
	waitInSync(ctx, t, a, topic, 3)
	return cfgs, nodes, a
}
