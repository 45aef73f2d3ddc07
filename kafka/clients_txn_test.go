//go:build kafkaclients

package kafka_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

const confluentTxnProgram = `
import json, sys, time
import confluent_kafka
from confluent_kafka import Producer, Consumer
broker, intopic, outtopic, group = sys.argv[1:5]
res = {"version": "confluent-kafka %s (librdkafka %s)" % (confluent_kafka.version()[0], confluent_kafka.libversion()[0]),
       "consumed": [], "output": [], "committed": []}
p = Producer({"bootstrap.servers": broker, "transactional.id": "py-txn", "transaction.timeout.ms": 10000})
p.init_transactions(30)
p.begin_transaction()
for i in range(10):
    p.produce(intopic, key=b"k%d" % (i % 3), value=b"in%d" % i)
p.commit_transaction(30)
p.begin_transaction()
for i in range(5):
    p.produce(intopic, key=b"x", value=b"aborted%d" % i)
p.abort_transaction(30)

# Consume, transform, produce, and commit the input offsets in the transaction.
c = Consumer({"bootstrap.servers": broker, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "isolation.level": "read_committed"})
c.subscribe([intopic])
got = []
deadline = time.time() + 30
while len(got) < 10 and time.time() < deadline:
    m = c.poll(0.5)
    if m is None or m.error():
        continue
    got.append(m)
res["consumed"] = [[m.partition(), m.offset(), m.value().decode()] for m in got]
p.begin_transaction()
for m in got:
    p.produce(outtopic, key=m.key(), value=b"out-" + m.value())
p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
p.commit_transaction(30)
for tp in c.committed(c.assignment(), 30):
    res["committed"].append([tp.partition, tp.offset])
c.close()

# The output, read committed: every transformed record once.
r = Consumer({"bootstrap.servers": broker, "group.id": group + "-check", "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "isolation.level": "read_committed"})
r.subscribe([outtopic])
deadline = time.time() + 30
quiet = None
while time.time() < deadline:
    m = r.poll(0.5)
    if m is not None and not m.error():
        res["output"].append(m.value().decode())
    if len(res["output"]) >= len(got) and quiet is None:
        quiet = time.time() + 2
    if quiet is not None and time.time() > quiet:
        break
r.close()
print(json.dumps(res))
`

// librdkafka's transactional producer through confluent-kafka: a committed and an
// aborted transaction, then a consume-transform-produce transaction that commits
// its input offsets (send_offsets_to_transaction); read_committed consumers see the
// committed records only, each once.
func TestClientConfluentTransactions(t *testing.T) {
	py := needPython(t, "confluent_kafka", "python3-confluent-kafka")
	n, c := startNode(t)
	qxdtest.CreateTopic(t, c, "py-txn-in", qxd.TopicConfig{Partitions: 2})
	qxdtest.CreateTopic(t, c, "py-txn-out", qxd.TopicConfig{Partitions: 2})
	out := run(t, "", py, "-c", confluentTxnProgram, n.KafkaAddr(), "py-txn-in", "py-txn-out", "py-txn-group")
	var res struct {
		Version   string     `json:"version"`
		Consumed  [][]any    `json:"consumed"`
		Output    []string   `json:"output"`
		Committed [][2]int64 `json:"committed"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("python printed %q: %v", out, err)
	}
	t.Logf("client version %s", res.Version)
	var consumed, want []string
	last := map[int32]int64{}
	for _, row := range res.Consumed {
		consumed = append(consumed, row[2].(string))
		p, o := int32(row[0].(float64)), int64(row[1].(float64))
		last[p] = max(last[p], o+1)
	}
	for i := range 10 {
		want = append(want, "in"+string(rune('0'+i)))
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
	ctx := ctxFor(t, 30*time.Second)
	d, err := c.Admin().DescribeGroup(ctx, "py-txn-group")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Partitions {
		if p.Topic == "py-txn-in" && p.Committed < last[p.Partition] {
			t.Errorf("partition %d: committed %d in the transaction, below the %d consumed", p.Partition, p.Committed, last[p.Partition])
		}
	}
	if len(d.Partitions) == 0 {
		t.Errorf("the transaction committed no input offsets: %+v", d)
	}
}
