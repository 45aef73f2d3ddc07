//go:build kafkaclients

// KafkaJS, a Kafka client in JavaScript with its own protocol code, against a
// node's listener: testdata/kafkajs/check.js run by Node.js. The kafkajs package
// (pinned by testdata/kafkajs/package-lock.json) is installed with `npm ci` into
// the user's cache directory once per lock file. Each test skips, saying so, when
// node or npm is missing.

package kafka_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/partitioner"
)

var kafkajsOnce struct {
	sync.Once
	modules, skip string
	err           error
}

// needKafkaJS returns the node_modules directory KafkaJS is installed in, running
// `npm ci` into the cache directory the first time.
func needKafkaJS(t *testing.T) string {
	t.Helper()
	kafkajsOnce.Do(func() {
		for _, tool := range []string{"node", "npm"} {
			if _, err := exec.LookPath(tool); err != nil {
				kafkajsOnce.skip = tool + " is not installed: install Node.js 18 or newer (apt-get install -y nodejs npm, or run `just kafka-clients`)"
				return
			}
		}
		src, err := filepath.Abs("testdata/kafkajs")
		if err != nil {
			kafkajsOnce.err = err
			return
		}
		lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
		if err != nil {
			kafkajsOnce.err = err
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		sum := sha256.Sum256(lock)
		dir := filepath.Join(cache, "qxd-kafkajs", hex.EncodeToString(sum[:8]))
		modules := filepath.Join(dir, "node_modules")
		if _, err := os.Stat(filepath.Join(modules, "kafkajs", "package.json")); err == nil {
			kafkajsOnce.modules = modules
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			kafkajsOnce.err = err
			return
		}
		for _, f := range []string{"package.json", "package-lock.json"} {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, f), b, 0o644)
			}
			if err != nil {
				kafkajsOnce.err = err
				return
			}
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			kafkajsOnce.skip = fmt.Sprintf("npm ci of kafkajs into %s failed (no registry?): %v\n%s", dir, err, out)
			return
		}
		kafkajsOnce.modules = modules
	})
	if kafkajsOnce.err != nil {
		t.Fatal(kafkajsOnce.err)
	}
	if kafkajsOnce.skip != "" {
		t.Skip(kafkajsOnce.skip)
	}
	return kafkajsOnce.modules
}

// runKafkaJS runs a scenario of check.js against brokers and decodes what it
// printed into res.
func runKafkaJS(t *testing.T, res any, scenario, brokers string, args ...string) {
	t.Helper()
	modules := needKafkaJS(t)
	t.Setenv("NODE_PATH", modules)
	t.Setenv("KAFKAJS_NO_PARTITIONER_WARNING", "1")
	out := run(t, "", "node", append([]string{"testdata/kafkajs/check.js", scenario, brokers}, args...)...)
	if err := json.Unmarshal([]byte(out), res); err != nil {
		t.Fatalf("check.js %s printed %q: %v", scenario, out, err)
	}
	var v struct{ Version string }
	_ = json.Unmarshal([]byte(out), &v)
	t.Logf("kafkajs %s", v.Version)
}

// KafkaJS's admin client: createTopics with configs (a second creation reports
// the topic exists), fetchTopicMetadata, describeConfigs, alterConfigs,
// createPartitions, deleteTopicRecords, fetchTopicOffsets, listGroups and
// describeGroups of a running group, fetchOffsets, resetOffsets to the earliest
// and latest offsets (a consumer of the group then starts where its fromBeginning
// says; fetchOffsets with resolveOffsets reads the earliest as the log start),
// setOffsets, deleteGroups and deleteTopics.
func TestClientKafkaJSAdmin(t *testing.T) {
	n, c := startNode(t)
	var res struct {
		Steps map[string]json.RawMessage `json:"steps"`
	}
	runKafkaJS(t, &res, "admin", n.KafkaAddr(), "kafkajs-admin", "kafkajs-admin-group")
	want := map[string]string{
		"createTopics":          `true`,
		"createTopicsAgain":     `false`,
		"metadata":              `[{"name":"kafkajs-admin","partitions":[0,1]}]`,
		"describeConfigs":       `{"retention.ms":"3600000","max.message.bytes":"200000"}`,
		"alterConfigs":          `{"retention.ms":"7200000"}`,
		"createPartitions":      `[0,1,2]`,
		"offsets":               `[{"partition":0,"low":"4","high":"10"},{"partition":1,"low":"0","high":"10"},{"partition":2,"low":"0","high":"10"}]`,
		"listGroupsWhileMember": `[{"groupId":"kafkajs-admin-group","protocolType":"consumer"}]`,
		"describeGroups":        `{"groupId":"kafkajs-admin-group","state":"Stable","protocolType":"consumer","members":1}`,
		"fetchOffsets":          `[{"partition":0,"offset":"10"},{"partition":1,"offset":"10"},{"partition":2,"offset":"10"}]`,
		"resetOffsets":          `[{"partition":0,"offset":"-2"},{"partition":1,"offset":"-2"},{"partition":2,"offset":"-2"}]`,
		"consumeAfterReset":     `[{"partition":0,"first":"4","count":6},{"partition":1,"first":"0","count":10},{"partition":2,"first":"0","count":10}]`,
		"resetOffsetsLatest":    `[{"partition":0,"offset":"-1"},{"partition":1,"offset":"-1"},{"partition":2,"offset":"-1"}]`,
		"resolveOffsets":        `[{"partition":0,"offset":"4"},{"partition":1,"offset":"0"},{"partition":2,"offset":"0"}]`,
		"setOffsets":            `[{"partition":0,"offset":"4"},{"partition":1,"offset":"7"},{"partition":2,"offset":"0"}]`,
		"deleteGroups":          `[{"groupId":"kafkajs-admin-group","errorCode":0}]`,
		"deleteTopics":          `true`,
	}
	for step, w := range want {
		if g := string(res.Steps[step]); g != w {
			t.Errorf("%s: KafkaJS got %s, want %s", step, g, w)
		}
	}
	ctx := ctxFor(t, 10*time.Second)
	if _, err := c.Admin().DescribeTopic(ctx, "kafkajs-admin"); err == nil {
		t.Errorf("the SDK still describes topic kafkajs-admin after KafkaJS deleted it")
	}
}

type kafkajsRec struct {
	Who       string `json:"who"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

func (r kafkajsRec) rec() rec { return rec{r.Key, r.Value, r.Partition, r.Offset} }

// KafkaJS producers: keyed records with acks -1 land on the partition qxd's
// murmur2 partitioner (Kafka's) picks for the key, at the offsets KafkaJS was told,
// with their headers; an idempotent producer's gzip batches are all stored. A
// group then reads them all with two members (eachMessage committing each record,
// eachBatch), sharing the partitions and taking them back when one leaves; the
// SDK's DescribeGroup shows the committed ends.
func TestClientKafkaJSProduceAndGroup(t *testing.T) {
	n, c := startNode(t)
	const topic, partitions, keyed = "kafkajs-records", 3, 30
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: partitions})
	var prod struct {
		Keyed []kafkajsRec `json:"keyed"`
		Batch []struct {
			Partition  int32 `json:"partition"`
			BaseOffset int64 `json:"baseOffset"`
			ErrorCode  int16 `json:"errorCode"`
		} `json:"batch"`
	}
	runKafkaJS(t, &prod, "produce", n.KafkaAddr(), topic, fmt.Sprint(keyed))
	if len(prod.Keyed) != keyed {
		t.Fatalf("KafkaJS produced %d keyed records, want %d", len(prod.Keyed), keyed)
	}
	told := map[string]rec{}
	for _, r := range prod.Keyed {
		if w := partitioner.KafkaPartition([]byte(r.Key), partitions); r.Partition != w {
			t.Errorf("KafkaJS put key %s on partition %d; qxd's murmur2 partitioner picks %d", r.Key, r.Partition, w)
		}
		told[r.Value] = r.rec()
	}
	for _, b := range prod.Batch {
		if b.ErrorCode != 0 {
			t.Errorf("gzip batch to partition %d: error %d", b.Partition, b.ErrorCode)
		}
	}
	total := keyed + 3*20
	ends := map[int32]int64{}
	gz := 0
	for _, r := range pollSDK(t, c, topic, partitions, total) {
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
		if strings.HasPrefix(string(r.Value), "gz") {
			gz++
			if w := partitioner.KafkaPartition(r.Key, partitions); r.Partition != w {
				t.Errorf("gzip record %s with key %s is on partition %d; murmur2 picks %d", r.Value, r.Key, r.Partition, w)
			}
			continue
		}
		if g, w := (rec{string(r.Key), string(r.Value), r.Partition, r.Offset}), told[string(r.Value)]; g != w {
			t.Errorf("SDK read %v, KafkaJS was told %v", g, w)
		}
		if len(r.Headers) != 1 || r.Headers[0].Key != "origin" || string(r.Headers[0].Value) != "kafkajs" {
			t.Errorf("SDK read %s with headers %v, want origin=kafkajs", r.Value, r.Headers)
		}
	}
	if gz != 60 {
		t.Errorf("SDK read %d gzip records, want 60", gz)
	}

	var grp struct {
		Consumed    []kafkajsRec `json:"consumed"`
		Assignments []struct {
			Who        string  `json:"who"`
			Partitions []int32 `json:"partitions"`
		} `json:"assignments"`
		Committed []struct {
			Partition int32 `json:"partition"`
			Offset    int64 `json:"offset"`
		} `json:"committed"`
	}
	runKafkaJS(t, &grp, "group", n.KafkaAddr(), topic, "kafkajs-group", fmt.Sprint(total))
	t.Logf("assignments: %+v", grp.Assignments)
	seen := map[[2]int64]bool{}
	who := map[string]bool{}
	for _, r := range grp.Consumed {
		seen[[2]int64{int64(r.Partition), r.Offset}] = true
		who[r.Who] = true
	}
	if len(seen) != total {
		t.Errorf("the group read %d distinct records, want %d", len(seen), total)
	}
	if !who["a"] || !who["b"] {
		t.Errorf("records were read by %v, want both members", who)
	}
	shared := false
	for _, a := range grp.Assignments {
		if len(a.Partitions) > 0 && len(a.Partitions) < partitions {
			shared = true
		}
	}
	if !shared {
		t.Errorf("the members never shared the partitions: %+v", grp.Assignments)
	}
	committed := map[int32]int64{}
	for _, p := range grp.Committed {
		committed[p.Partition] = p.Offset
	}
	if fmt.Sprint(committed) != fmt.Sprint(ends) {
		t.Errorf("KafkaJS fetchOffsets: %v, want the ends %v", committed, ends)
	}
	waitCommitted(t, c, "kafkajs-group", topic, ends)
}

// KafkaJS's transactional producer: a committed and an aborted transaction, then
// a consume-transform-produce transaction committing its input offsets
// (sendOffsets); read-committed consumers (KafkaJS's default) see the committed
// records only, each once, and the SDK sees the input offsets committed.
func TestClientKafkaJSTransactions(t *testing.T) {
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "kafkajs-txn-in", qxd.TopicConfig{Partitions: 2})
	qxdtest.CreateTopic(t, c, "kafkajs-txn-out", qxd.TopicConfig{Partitions: 2})
	var res struct {
		Consumed []kafkajsRec `json:"consumed"`
		Output   []string     `json:"output"`
		Offsets  []struct {
			Partition int32  `json:"partition"`
			Offset    string `json:"offset"`
		} `json:"offsets"`
	}
	runKafkaJS(t, &res, "txn", n.KafkaAddr(), "kafkajs-txn-in", "kafkajs-txn-out", "kafkajs-txn-group")
	var consumed, want []string
	for _, r := range res.Consumed {
		consumed = append(consumed, r.Value)
	}
	for i := range 10 {
		want = append(want, fmt.Sprintf("in%d", i))
	}
	slices.Sort(consumed)
	if !slices.Equal(consumed, want) {
		t.Fatalf("read committed input %q, want %q (no aborted record)", consumed, want)
	}
	slices.Sort(res.Output)
	for i := range want {
		want[i] = "out-" + want[i]
	}
	if !slices.Equal(res.Output, want) {
		t.Fatalf("read committed output %q, want %q, each once", res.Output, want)
	}
	ends := map[int32]int64{}
	for _, o := range res.Offsets {
		var off int64
		fmt.Sscan(o.Offset, &off)
		ends[o.Partition] = off
	}
	waitCommitted(t, c, "kafkajs-txn-group", "kafkajs-txn-in", ends)
}

// In a 3-node cluster KafkaJS bootstraps from one node, is told of the three
// brokers, and its idempotent producer reaches every partition's leader; the SDK
// reads each record where KafkaJS was told it is.
func TestClientKafkaJSCluster(t *testing.T) {
	needKafkaJS(t)
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].KafkaListen = "127.0.0.1:0"
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	c := qxdtest.Connect(t, nodes[0])
	const partitions = 6
	qxdtest.CreateTopic(t, c, "kafkajs-spread", qxd.TopicConfig{Partitions: partitions, Replicas: 3})
	var res struct {
		Brokers []string `json:"brokers"`
		Leaders []struct {
			Partition int32 `json:"partition"`
			Leader    int32 `json:"leader"`
		} `json:"leaders"`
		Keyed []kafkajsRec `json:"keyed"`
	}
	runKafkaJS(t, &res, "cluster", nodes[1].KafkaAddr(), "kafkajs-spread", "40")
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.KafkaAddr())
	}
	slices.Sort(addrs)
	if !slices.Equal(res.Brokers, addrs) {
		t.Errorf("KafkaJS's describeCluster through %s: brokers %v, want %v", nodes[1].KafkaAddr(), res.Brokers, addrs)
	}
	leaders := map[int32]bool{}
	for _, l := range res.Leaders {
		leaders[l.Leader] = true
	}
	if len(res.Leaders) != partitions || len(leaders) < 2 {
		t.Errorf("KafkaJS's metadata: leaders %+v, want %d partitions led by more than one node", res.Leaders, partitions)
	}
	told := map[string]rec{}
	for _, r := range res.Keyed {
		told[r.Value] = r.rec()
		if w := partitioner.KafkaPartition([]byte(r.Key), partitions); r.Partition != w {
			t.Errorf("KafkaJS put key %s on partition %d; murmur2 picks %d", r.Key, r.Partition, w)
		}
	}
	for _, r := range pollSDK(t, c, "kafkajs-spread", partitions, len(res.Keyed)) {
		if g, w := (rec{string(r.Key), string(r.Value), r.Partition, r.Offset}), told[string(r.Value)]; g != w {
			t.Errorf("SDK read %v, KafkaJS was told %v", g, w)
		}
	}
}
