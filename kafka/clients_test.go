//go:build kafkaclients

// Tests with real non-Go Kafka clients against a node's listener: kcat
// (librdkafka), confluent-kafka and kafka-python, from Debian's packages. Run them
// with `just kafka-clients`, or `go test -tags kafkaclients -run TestClient
// ./kafka/` once kcat, python3-confluent-kafka and python3-kafka are installed.
// Each test skips, saying what is missing, when its client is not installed.
// KafkaJS (Node.js) is in clients_kafkajs_test.go, the Java client in
// clients_java_test.go.

package kafka_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// debianPython is the interpreter Debian's python3-* packages are installed for;
// QXD_KAFKA_PYTHON overrides it.
func debianPython() string {
	if p := os.Getenv("QXD_KAFKA_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

func needKcat(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed: apt-get install -y kcat (or run `just kafka-clients`)")
	}
	return p
}

func needPython(t *testing.T, module, pkg string) string {
	t.Helper()
	py := debianPython()
	if err := exec.Command(py, "-c", "import "+module).Run(); err != nil {
		t.Skipf("%s cannot import %s: apt-get install -y %s (or run `just kafka-clients`)", py, module, pkg)
	}
	return py
}

// run runs a client program, failing the test with its output if it fails.
func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx := ctxFor(t, 120*time.Second)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if s := stderr.String(); strings.Contains(s, "PROTOERR") || strings.Contains(s, "Protocol parse failure") {
		t.Errorf("%s reported protocol errors:\n%s", name, s)
	}
	return stdout.String()
}

// kcatVersion is the version line of `kcat -V`.
func kcatVersion(kcat string) string {
	out, _ := exec.Command(kcat, "-V").CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Version ") {
			return "kcat " + line
		}
	}
	return "kcat of unknown version"
}

// Keyed records with headers produced by kcat are read by the SDK at the offsets
// kcat's own consumer reports, with the same keys, values and headers.
func TestClientKcatProduceSDKReads(t *testing.T) {
	kcat := needKcat(t)
	t.Log(kcatVersion(kcat))
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "from-kcat", qxd.TopicConfig{Partitions: 3})
	var in strings.Builder
	for i := range 30 {
		fmt.Fprintf(&in, "k%d:v%d\n", i%7, i)
	}
	run(t, in.String(), kcat, "-b", n.KafkaAddr(), "-P", "-t", "from-kcat", "-K:", "-H", "origin=kcat", "-z", "lz4")
	// Where kcat's consumer says each record is.
	out := run(t, "", kcat, "-b", n.KafkaAddr(), "-C", "-t", "from-kcat", "-o", "beginning", "-e", "-q",
		"-f", "%p %o %k %s %h\n")
	kcatSaw := map[string]rec{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 || f[4] != "origin=kcat" {
			t.Fatalf("kcat printed %q, want partition offset key value origin=kcat", line)
		}
		p, _ := strconv.Atoi(f[0])
		o, _ := strconv.ParseInt(f[1], 10, 64)
		kcatSaw[f[3]] = rec{f[2], f[3], int32(p), o}
	}
	if len(kcatSaw) != 30 {
		t.Fatalf("kcat read %d records, want 30:\n%s", len(kcatSaw), out)
	}
	for _, r := range pollSDK(t, c, "from-kcat", 3, 30) {
		want, ok := kcatSaw[string(r.Value)]
		if !ok {
			t.Fatalf("SDK read %s, which kcat did not produce", r.Value)
		}
		if g := (rec{string(r.Key), string(r.Value), r.Partition, r.Offset}); g != want {
			t.Errorf("SDK read %v, kcat read %v", g, want)
		}
		if len(r.Headers) != 1 || r.Headers[0].Key != "origin" || string(r.Headers[0].Value) != "kcat" {
			t.Errorf("SDK read %s with headers %v, want origin=kcat", r.Value, r.Headers)
		}
	}
}

// kcat (librdkafka) compresses with every codec it is told: the batches qxd
// stores carry it. librdkafka 2.0 turns gzip, snappy and lz4 on only for a
// broker whose ApiVersions lists Produce v0 (Kafka 4.0 lists it for that
// reason, KAFKA-18659); when qxd listed Produce from v3, it sent them
// uncompressed and said so only in its debug log.
func TestClientKcatCompresses(t *testing.T) {
	kcat := needKcat(t)
	t.Log(kcatVersion(kcat))
	n, c := startNode(t)
	codecs := map[string]int16{"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
	for _, name := range slices.Sorted(maps.Keys(codecs)) {
		topic := "codec-" + name
		qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 1})
		var in strings.Builder
		for i := range 50 {
			fmt.Fprintf(&in, "%s record %d, compressible compressible compressible\n", name, i)
		}
		run(t, in.String(), kcat, "-b", n.KafkaAddr(), "-P", "-t", topic, "-p", "0", "-z", name)
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.MaxBytes, req.MaxWaitMillis = 11, 1<<20, 0
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = []kmsg.FetchRequestTopicPartition{fp}
		req.Topics = []kmsg.FetchRequestTopic{ft}
		resp := roundTrip(t, n.KafkaAddr(), req).(*kmsg.FetchResponse)
		rp := resp.Topics[0].Partitions[0]
		if rp.ErrorCode != 0 {
			t.Fatalf("%s: fetch answered code %d", topic, rp.ErrorCode)
		}
		records, batches := 0, 0
		for raw := rp.RecordBatches; len(raw) >= 12; {
			size := 12 + int(binary.BigEndian.Uint32(raw[8:12]))
			var b kmsg.RecordBatch
			if err := b.ReadFrom(raw[:size]); err != nil {
				t.Fatalf("%s: %v", topic, err)
			}
			if got := b.Attributes & 0x7; got != codecs[name] {
				t.Errorf("kcat -z %s: a batch of %d records stored with codec %d, want %d", name, b.NumRecords, got, codecs[name])
			}
			records += int(b.NumRecords)
			batches++
			raw = raw[size:]
		}
		if records != 50 {
			t.Errorf("kcat -z %s: %d records in %d batches stored, want 50", name, records, batches)
		}
	}
}

// Records the SDK produced are read by kcat, at the offsets the SDK was told, with
// their keys and headers; kcat's group consumer commits offsets the SDK sees.
func TestClientKcatConsumeSDKProduced(t *testing.T) {
	kcat := needKcat(t)
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "to-kcat", qxd.TopicConfig{Partitions: 2})
	ctx := ctxFor(t, 60*time.Second)
	p, err := c.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	acked := map[string]rec{}
	for i := range 40 {
		r := &qxd.Record{Topic: "to-kcat", Key: fmt.Appendf(nil, "k%d", i%5), Value: fmt.Appendf(nil, "v%d", i),
			Headers: []qxd.Header{{Key: "origin", Value: []byte("sdk")}}}
		if err := p.ProduceSync(ctx, r); err != nil {
			t.Fatal(err)
		}
		acked[string(r.Value)] = rec{string(r.Key), string(r.Value), r.Partition, r.Offset}
	}
	for _, args := range [][]string{
		{"-C", "-t", "to-kcat", "-o", "beginning"},
		{"-G", "kcat-group", "-o", "beginning", "to-kcat"},
	} {
		out := run(t, "", kcat, append([]string{"-b", n.KafkaAddr(), "-e", "-q", "-f", "%p %o %k %s %h\n"}, args...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(acked) {
			t.Fatalf("kcat %v read %d records, want %d:\n%s", args, len(lines), len(acked), out)
		}
		for _, line := range lines {
			f := strings.Fields(line)
			if len(f) != 5 {
				t.Fatalf("kcat printed %q", line)
			}
			pt, _ := strconv.Atoi(f[0])
			o, _ := strconv.ParseInt(f[1], 10, 64)
			if g, w := (rec{f[2], f[3], int32(pt), o}), acked[f[3]]; g != w {
				t.Errorf("kcat %v read %v, SDK was told %v", args, g, w)
			}
			if f[4] != "origin=sdk" {
				t.Errorf("kcat read headers %q, want origin=sdk", f[4])
			}
		}
	}
	// kcat -G commits what it read (auto commit, at close).
	ends := map[int32]int64{}
	for _, r := range acked {
		ends[r.partition] = max(ends[r.partition], r.offset+1)
	}
	waitCommitted(t, c, "kcat-group", "to-kcat", ends)
}

// waitCommitted waits until the SDK's DescribeGroup shows want as group's committed
// offsets of topic.
func waitCommitted(t *testing.T, c *qxd.Client, group, topic string, want map[int32]int64) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	var got map[int32]int64
	for {
		d, err := c.Admin().DescribeGroup(ctx, group)
		if err == nil {
			got = map[int32]int64{}
			for _, p := range d.Partitions {
				if p.Topic == topic {
					got[p.Partition] = p.Committed
				}
			}
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s committed %v of %s (last error %v), want %v", group, got, topic, err, want)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pyResult is what the Python programs print: the records they produced (as their
// client reported them), the records they consumed, and what they committed.
type pyResult struct {
	Version   string     `json:"version"`
	Produced  [][]any    `json:"produced"` // partition, offset, key, value
	Consumed  [][]any    `json:"consumed"`
	Committed [][2]int64 `json:"committed"` // partition, offset
}

func (r pyResult) recs(rows [][]any) []rec {
	var out []rec
	for _, row := range rows {
		out = append(out, rec{row[2].(string), row[3].(string), int32(row[0].(float64)), int64(row[1].(float64))})
	}
	slices.SortFunc(out, func(a, b rec) int { return strings.Compare(a.String(), b.String()) })
	return out
}

func runPython(t *testing.T, py, program string, args ...string) pyResult {
	t.Helper()
	out := run(t, "", py, append([]string{"-c", program}, args...)...)
	var res pyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("python printed %q: %v", out, err)
	}
	t.Logf("client version %s", res.Version)
	return res
}

// checkPython checks that what a Python client produced and consumed agrees with
// the SDK, and that its group's committed offsets are the SDK's.
func checkPython(t *testing.T, c *qxd.Client, res pyResult, topic, group string, partitions int32) {
	t.Helper()
	produced := res.recs(res.Produced)
	if len(produced) == 0 {
		t.Fatal("the client produced nothing")
	}
	var sdk []rec
	for _, r := range pollSDK(t, c, topic, partitions, len(produced)) {
		sdk = append(sdk, rec{string(r.Key), string(r.Value), r.Partition, r.Offset})
	}
	slices.SortFunc(sdk, func(a, b rec) int { return strings.Compare(a.String(), b.String()) })
	if fmt.Sprint(sdk) != fmt.Sprint(produced) {
		t.Errorf("SDK read %v\nclient was told %v", sdk, produced)
	}
	if consumed := res.recs(res.Consumed); fmt.Sprint(consumed) != fmt.Sprint(produced) {
		t.Errorf("client consumed %v\nit produced %v", consumed, produced)
	}
	want := map[int32]int64{}
	for _, r := range produced {
		want[r.partition] = max(want[r.partition], r.offset+1)
	}
	committed := map[int32]int64{}
	for _, pc := range res.Committed {
		committed[int32(pc[0])] = pc[1]
	}
	if fmt.Sprint(committed) != fmt.Sprint(want) {
		t.Errorf("client committed %v, want %v", committed, want)
	}
	waitCommitted(t, c, group, topic, want)
}

const confluentProgram = `
import json, sys, time
import confluent_kafka as ck
broker, topic, group = sys.argv[1:4]
res = {"version": "confluent-kafka %s, librdkafka %s" % (ck.version()[0], ck.libversion()[0]),
       "produced": [], "consumed": [], "committed": []}
errs = []
def delivered(err, msg):
    if err:
        errs.append(str(err))
    else:
        res["produced"].append([msg.partition(), msg.offset(), msg.key().decode(), msg.value().decode()])
p = ck.Producer({"bootstrap.servers": broker, "enable.idempotence": True, "compression.type": "zstd", "linger.ms": 5})
for i in range(50):
    p.produce(topic, key=b"k%d" % (i % 7), value=b"v%d" % i, headers=[("origin", b"confluent")], on_delivery=delivered)
if p.flush(30) != 0 or errs:
    sys.exit("produce: %s" % errs)
c = ck.Consumer({"bootstrap.servers": broker, "group.id": group, "auto.offset.reset": "earliest",
                 "enable.auto.commit": False, "partition.assignment.strategy": "cooperative-sticky"})
c.subscribe([topic])
deadline = time.time() + 60
while len(res["consumed"]) < len(res["produced"]) and time.time() < deadline:
    m = c.poll(1.0)
    if m is None:
        continue
    if m.error():
        sys.exit("consume: %s" % m.error())
    if dict(m.headers() or []).get("origin") != b"confluent":
        sys.exit("record %s has headers %s" % (m.value(), m.headers()))
    res["consumed"].append([m.partition(), m.offset(), m.key().decode(), m.value().decode()])
for tp in c.commit(asynchronous=False):
    if tp.error:
        sys.exit("commit: %s" % tp.error)
for tp in c.committed(c.assignment(), timeout=10):
    res["committed"].append([tp.partition, tp.offset])
c.close()
print(json.dumps(res))
`

// confluent-kafka (librdkafka): an idempotent zstd producer, then a group consumer
// (cooperative-sticky) that commits; the SDK reads the same records at the same
// offsets and DescribeGroup shows the committed offsets.
func TestClientConfluentKafka(t *testing.T) {
	py := needPython(t, "confluent_kafka", "python3-confluent-kafka")
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "from-confluent", qxd.TopicConfig{Partitions: 3})
	res := runPython(t, py, confluentProgram, n.KafkaAddr(), "from-confluent", "confluent-group")
	checkPython(t, c, res, "from-confluent", "confluent-group", 3)
}

const kafkaPythonProgram = `
import json, sys
import kafka
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
broker, topic, group, version = sys.argv[1:5]
api = tuple(int(x) for x in version.split(".")) if version else None
res = {"version": "kafka-python %s, api_version %s" % (kafka.__version__, version or "detected"),
       "produced": [], "consumed": [], "committed": []}
p = KafkaProducer(bootstrap_servers=broker, api_version=api, compression_type="gzip")
for i in range(30):
    md = p.send(topic, key=b"k%d" % (i % 5), value=b"v%d" % i).get(timeout=30)
    res["produced"].append([md.partition, md.offset, "k%d" % (i % 5), "v%d" % i])
p.close()
c = KafkaConsumer(bootstrap_servers=broker, api_version=api, group_id=group, auto_offset_reset="earliest",
                  enable_auto_commit=False, consumer_timeout_ms=15000)
c.subscribe([topic])
for m in c:
    res["consumed"].append([m.partition, m.offset, m.key.decode(), m.value.decode()])
    if len(res["consumed"]) == len(res["produced"]):
        break
c.commit()
for tp in c.assignment():
    res["committed"].append([tp.partition, c.committed(tp)])
c.close()
print(json.dumps(res))
`

// kafka-python, which speaks older versions (Metadata v0/v1, Fetch v4, ListOffsets
// v1, OffsetCommit v2, JoinGroup v2 when told the broker is 0.11/1.0): produce,
// group consume and commit, at the versions it detects and at pinned older ones.
func TestClientKafkaPython(t *testing.T) {
	py := needPython(t, "kafka", "python3-kafka")
	n, c := startNode(t)
	for i, version := range []string{"", "0.11.0", "1.0.0", "2.0.0"} {
		topic, group := fmt.Sprintf("from-kafka-python-%d", i), fmt.Sprintf("kafka-python-group-%d", i)
		t.Run("api_version="+version, func(t *testing.T) {
			qxdtest.CreateTopic(t, c, topic, qxd.TopicConfig{Partitions: 2})
			res := runPython(t, py, kafkaPythonProgram, n.KafkaAddr(), topic, group, version)
			checkPython(t, c, res, topic, group, 2)
		})
	}
}

// In a 3-node cluster kcat bootstraps from one node, sees the three brokers,
// produces to every partition's leader and reads back what it wrote.
func TestClientKcatCluster(t *testing.T) {
	kcat := needKcat(t)
	cfgs := qxdtest.ClusterConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].KafkaListen = "127.0.0.1:0"
	}
	nodes := qxdtest.StartCluster(t, cfgs)
	c := qxdtest.Connect(t, nodes[0])
	qxdtest.CreateTopic(t, c, "spread", qxd.TopicConfig{Partitions: 6, Replicas: 3})
	md := run(t, "", kcat, "-b", nodes[1].KafkaAddr(), "-L", "-t", "spread")
	for _, n := range nodes {
		if !strings.Contains(md, " at "+n.KafkaAddr()) {
			t.Errorf("kcat -L from %s does not list broker %s:\n%s", nodes[1].KafkaAddr(), n.KafkaAddr(), md)
		}
	}
	var in strings.Builder
	for i := range 60 {
		fmt.Fprintf(&in, "k%d:v%d\n", i, i)
	}
	run(t, in.String(), kcat, "-b", nodes[2].KafkaAddr(), "-P", "-t", "spread", "-K:", "-X", "enable.idempotence=true")
	out := run(t, "", kcat, "-b", nodes[0].KafkaAddr(), "-C", "-t", "spread", "-o", "beginning", "-e", "-q", "-f", "%p %o %k %s\n")
	kcatSaw := map[string]rec{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Fatalf("kcat printed %q", line)
		}
		p, _ := strconv.Atoi(f[0])
		o, _ := strconv.ParseInt(f[1], 10, 64)
		kcatSaw[f[3]] = rec{f[2], f[3], int32(p), o}
	}
	if len(kcatSaw) != 60 {
		t.Fatalf("kcat read %d records, want 60:\n%s", len(kcatSaw), out)
	}
	for _, r := range pollSDK(t, c, "spread", 6, 60) {
		if g, w := (rec{string(r.Key), string(r.Value), r.Partition, r.Offset}), kcatSaw[string(r.Value)]; g != w {
			t.Errorf("SDK read %v, kcat read %v", g, w)
		}
	}
}

const cooperativeProgram = `
import sys, time
import confluent_kafka as ck
broker, topic, group = sys.argv[1:4]
def member():
    c = ck.Consumer({"bootstrap.servers": broker, "group.id": group, "auto.offset.reset": "earliest",
                     "partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": 6000})
    c.subscribe([topic])
    return c
def owned(c):
    return sorted(p.partition for p in c.assignment())
def wait(what, cond, members, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        for m in members:
            m.poll(0.1)
        if cond():
            return
    sys.exit("%s: assignments %s" % (what, [owned(m) for m in members]))
a = member()
wait("one member", lambda: owned(a) == [0, 1, 2], [a])
b = member()
wait("two members", lambda: owned(a) and owned(b) and sorted(owned(a) + owned(b)) == [0, 1, 2], [a, b])
b.close()
wait("after one left", lambda: owned(a) == [0, 1, 2], [a])
a.close()
print("{}")
`

// confluent-kafka members with the cooperative-sticky assignor (incremental
// rebalances): one member takes every partition, a second joins and takes some, and
// the first takes them all again when the second leaves.
func TestClientConfluentCooperativeRebalance(t *testing.T) {
	py := needPython(t, "confluent_kafka", "python3-confluent-kafka")
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "shared", qxd.TopicConfig{Partitions: 3})
	run(t, "", py, "-c", cooperativeProgram, n.KafkaAddr(), "shared", "cooperative-group")
}
