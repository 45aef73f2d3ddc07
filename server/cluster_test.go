package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/semantics"
	"github.com/qxd-io/qxd/server"
)

// waitClusterInfo asks c for the cluster info until check passes or d has passed,
// and fails the test with the last answer and check's complaint then.
func waitClusterInfo(t *testing.T, c *qxd.Client, d time.Duration, check func(qxd.ClusterInfo) error) qxd.ClusterInfo {
	t.Helper()
	ctx := qxdtest.Context(t, d+30*time.Second)
	deadline := time.Now().Add(d)
	var last string
	for {
		info, err := c.Admin().ClusterInfo(ctx)
		if err == nil {
			if err = check(info); err == nil {
				return info
			}
		}
		b, _ := json.Marshal(info)
		if s := fmt.Sprintf("%v: %s", err, b); s != last {
			t.Logf("cluster info not as expected yet: %s", s)
			last = s
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster info not as expected after %v: %s", d, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func nodeNames(info qxd.ClusterInfo) []string {
	var names []string
	for _, n := range info.Nodes {
		names = append(names, n.Name)
	}
	return names
}

func TestClusterInfo(t *testing.T) {
	t.Parallel()
	cfgs := qxdtest.ClusterConfigs(t, 3)
	cfgs[0].Sync, cfgs[1].Sync, cfgs[2].Sync = server.SyncAlways, server.SyncAlways, time.Minute // each node says its own
	nodes := qxdtest.StartCluster(t, cfgs)
	ctx := qxdtest.Context(t, 2*time.Minute)
	c := qxdtest.ConnectCluster(t, nodes)
	qxdtest.CreateTopic(t, c, "rep", qxd.TopicConfig{Partitions: 6, Replicas: 3})
	// Three partitions with one replica each: when the node holding one stops, it
	// has no replica left to lead it.
	qxdtest.CreateTopic(t, c, "single", qxd.TopicConfig{Partitions: 3, Replicas: 1})
	d, err := c.Admin().DescribeTopic(ctx, "single")
	if err != nil {
		t.Fatal(err)
	}
	singles := map[string][]int32{} // node → its "single" partitions
	for _, p := range d.Partitions {
		singles[p.Leader] = append(singles[p.Leader], p.Partition)
	}
	names := []string{"n1", "n2", "n3"}

	// Followers may still be catching up right after the create: wait until all are.
	info := waitClusterInfo(t, c, 20*time.Second, func(info qxd.ClusterInfo) error {
		if len(info.UnderReplicated) != 0 {
			return fmt.Errorf("%d partitions under-replicated", len(info.UnderReplicated))
		}
		return nil
	})
	if info.Name != cfgs[0].ClusterName {
		t.Errorf("cluster name %q, want %q (the configs' ClusterName)", info.Name, cfgs[0].ClusterName)
	}
	if !slices.Contains(names, info.MetaLeader) {
		t.Errorf("meta leader %q, want one of %v", info.MetaLeader, names)
	}
	if got := nodeNames(info); !slices.Equal(got, names) {
		t.Fatalf("nodes %v, want %v sorted by name", got, names)
	}
	if info.Partitions != 9 {
		t.Errorf("partitions %d, want 9 (6 + 3; qxd's own buckets are not partitions)", info.Partitions)
	}
	leaders := 0
	for _, n := range info.Nodes {
		if !n.Up {
			t.Errorf("node %s is down, want all up", n.Name)
		}
		if want := map[string]string{"n1": "always", "n2": "always", "n3": "1m"}[n.Name]; n.Sync != want {
			t.Errorf("node %s syncs %q, want %q", n.Name, n.Sync, want)
		}
		if want := 6 + len(singles[n.Name]); n.Replicas != want {
			t.Errorf("node %s holds %d replicas, want %d: one of each of rep's 6 partitions and %d of single's",
				n.Name, n.Replicas, want, len(singles[n.Name]))
		}
		leaders += n.Leaders
	}
	if leaders != 9 {
		t.Errorf("leaders sum to %d, want 9, one per partition: %+v", leaders, info.Nodes)
	}

	// Any node answers the same: ask each one on its own.
	for _, n := range nodes {
		nc := qxdtest.Connect(t, n)
		got, err := nc.Admin().ClusterInfo(ctx)
		if err != nil {
			t.Fatalf("cluster info from %s: %v", n.Name(), err)
		}
		if len(got.Nodes) != 3 || got.MetaLeader != info.MetaLeader || got.Partitions != 9 || len(got.UnderReplicated) != 0 {
			t.Errorf("cluster info from %s differs: %+v, want %+v", n.Name(), got, info)
		}
	}

	// Stop the node holding the most one-replica partitions (n1 if none: it then
	// still holds one of each of rep's partitions).
	var victim *server.Node
	for _, n := range nodes {
		if victim == nil || len(singles[n.Name()]) > len(singles[victim.Name()]) {
			victim = n
		}
	}
	var survivor *server.Node
	for _, n := range nodes {
		if n != victim {
			survivor = n
			break
		}
	}
	t.Logf("stopping %s (meta leader %s; one-replica partitions %v)", victim.Name(), info.MetaLeader, singles)
	victim.NATSServer().Shutdown()
	sc := qxdtest.Connect(t, survivor)

	// A node stopped cleanly announces its shutdown, so every node marks it
	// Offline at once, and it hands the leadership of its streams (and of the meta
	// group) to the others before it goes: the answer below is usually right on
	// the first try. The meta leader's own Current flag for the stopped peer stays
	// true for up to 10 s (JetStream's lost-quorum interval), which is why a node
	// is up by its Offline flag, not by Current. A node that crashed without the
	// announcement would show as up until the cluster detects it as an orphan.
	lost := singles[victim.Name()]
	check := func(info qxd.ClusterInfo) error {
		if got := nodeNames(info); !slices.Equal(got, names) {
			return fmt.Errorf("nodes %v, want %v (a stopped node stays a member)", got, names)
		}
		for _, n := range info.Nodes {
			if n.Up != (n.Name != victim.Name()) {
				return fmt.Errorf("node %s up=%t", n.Name, n.Up)
			}
		}
		if info.MetaLeader == "" || info.MetaLeader == victim.Name() {
			return fmt.Errorf("meta leader %q", info.MetaLeader)
		}
		if len(info.UnderReplicated) != 6+len(lost) {
			return fmt.Errorf("%d partitions under-replicated, want %d", len(info.UnderReplicated), 6+len(lost))
		}
		for _, u := range info.UnderReplicated {
			switch u.Topic {
			case "rep":
				if u.Current != 2 || u.Replicas != 3 || u.Leader == "" || u.Leader == victim.Name() ||
					!slices.Equal(u.OutOfSync, []string{victim.Name()}) {
					return fmt.Errorf("rep/%d: %+v, want 2 of 3 current, led by a survivor, %s out of sync", u.Partition, u, victim.Name())
				}
			case "single":
				if !slices.Contains(lost, u.Partition) || u.Current != 0 || u.Replicas != 1 || u.Leader != "" {
					return fmt.Errorf("single/%d: %+v, want leaderless, 0 of 1 current", u.Partition, u)
				}
			default:
				return fmt.Errorf("unexpected %+v", u)
			}
		}
		return nil
	}
	info = waitClusterInfo(t, sc, 30*time.Second, check)
	// Every survivor answers the same, meta leader or not: node states come from
	// each node's own Offline flags, partitions from their stream leaders.
	for _, n := range nodes {
		if n == victim {
			continue
		}
		got, err := qxdtest.Connect(t, n).Admin().ClusterInfo(ctx)
		if err == nil {
			err = check(got)
		}
		if err != nil {
			t.Errorf("cluster info from %s after the stop: %v", n.Name(), err)
		}
	}
	// A stopped node keeps its placements: it still counts its replicas, but leads
	// nothing, and the survivors lead every partition that has a replica left.
	leaders = 0
	for _, n := range info.Nodes {
		if want := 6 + len(singles[n.Name]); n.Replicas != want {
			t.Errorf("node %s: %d replicas after the stop, want %d (placement does not change)", n.Name, n.Replicas, want)
		}
		if n.Name == victim.Name() && n.Leaders != 0 {
			t.Errorf("stopped node %s leads %d partitions", n.Name, n.Leaders)
		}
		leaders += n.Leaders
	}
	if want := 9 - len(lost); leaders != want {
		t.Errorf("leaders sum to %d after the stop, want %d", leaders, want)
	}
}

func TestClusterInfoSingleNode(t *testing.T) {
	t.Parallel()
	n := qxdtest.StartNode(t)
	c := qxdtest.Connect(t, n)
	ctx := qxdtest.Context(t, 30*time.Second)

	info, err := c.Admin().ClusterInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := qxd.ClusterInfo{Name: "", MetaLeader: n.Name(), Nodes: []qxd.NodeInfo{{Name: n.Name(), Up: true, Sync: "always"}},
		UnderReplicated: []qxd.UnderReplicated{}, Damaged: []semantics.DamagedPartition{}}
	if b, w := mustJSON(t, info), mustJSON(t, want); b != w {
		t.Errorf("cluster info of an empty node:\n got %s\nwant %s", b, w)
	}

	qxdtest.CreateTopic(t, c, "a", qxd.TopicConfig{Partitions: 3})
	qxdtest.CreateTopic(t, c, "b.c", qxd.TopicConfig{Partitions: 2})
	info, err = c.Admin().ClusterInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want.Partitions = 5
	want.Nodes[0].Leaders, want.Nodes[0].Replicas = 5, 5
	if b, w := mustJSON(t, info), mustJSON(t, want); b != w {
		t.Errorf("cluster info with 5 partitions:\n got %s\nwant %s", b, w)
	}

	// A topic whose create died half-way is not counted: its streams may not exist.
	js, err := jetstream.New(c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, semantics.TopicsBucket)
	if err != nil {
		t.Fatal(err)
	}
	half := semantics.TopicMeta{Name: "half", ID: semantics.NewTopicID(), State: semantics.TopicCreating,
		Config: qxd.TopicConfig{Partitions: 4}.WithDefaults()}
	if _, err := kv.Put(ctx, semantics.TopicKey(half.Name), []byte(mustJSON(t, half))); err != nil {
		t.Fatal(err)
	}
	info, err = c.Admin().ClusterInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, w := mustJSON(t, info), mustJSON(t, want); b != w {
		t.Errorf("cluster info with a half-created topic:\n got %s\nwant %s", b, w)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
