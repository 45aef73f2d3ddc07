//go:build kafkaclients

package kafka_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const confluentResetProgram = `
import json, sys, time
import confluent_kafka as ck
broker, topic, group, reset = sys.argv[1:5]
parts = [ck.TopicPartition(topic, p) for p in range(3)]
res = {"version": "confluent-kafka %s, librdkafka %s" % (ck.version()[0], ck.libversion()[0]),
       "committed": {}, "first": {}, "count": {}, "eof": {}}
c = ck.Consumer({"bootstrap.servers": broker, "group.id": group, "auto.offset.reset": reset,
                 "enable.auto.commit": False, "enable.partition.eof": True})
for tp in c.committed(parts, timeout=10):
    res["committed"][tp.partition] = tp.offset
c.subscribe([topic])
deadline = time.time() + 60
while len(res["eof"]) < 3 and time.time() < deadline:
    m = c.poll(0.5)
    if m is None:
        continue
    if m.error():
        if m.error().code() == ck.KafkaError._PARTITION_EOF:
            res["eof"][m.partition()] = m.offset()
            continue
        sys.exit("consume: %s" % m.error())
    res["first"].setdefault(m.partition(), m.offset())
    res["count"][m.partition()] = res["count"].get(m.partition(), 0) + 1
c.close()
print(json.dumps(res))
`

// resetResult is what confluentResetProgram prints, per partition: the offset
// librdkafka's committed() reports, the first record's offset, how many records it
// read, and where it reached the partition's end.
type resetResult struct {
	Version   string          `json:"version"`
	Committed map[int32]int64 `json:"committed"`
	First     map[int32]int64 `json:"first"`
	Count     map[int32]int   `json:"count"`
	EOF       map[int32]int64 `json:"eof"`
}

// A confluent-kafka (librdkafka) group consumer reads a committed -2 as "start at
// the log start", whatever its auto.offset.reset, and a committed -1 as no
// committed offset: it starts at auto.offset.reset, as on a partition never
// committed. The partitions were trimmed (log start 4, end 10), so the start is
// not offset 0.
func TestClientConfluentCommittedLogical(t *testing.T) {
	py := needPython(t, "confluent_kafka", "python3-confluent-kafka")
	n, c := startNode(t)
	// where says, per partition (committed -2, -1, never), where the consumer
	// starts: at the log start or at the end.
	const start, end = resetLogStart, resetEnd
	for _, tc := range []struct {
		reset string
		where [3]int64
	}{
		{"latest", [3]int64{start, end, end}},
		{"earliest", [3]int64{start, start, start}},
	} {
		t.Run("auto.offset.reset="+tc.reset, func(t *testing.T) {
			topic, group := "reset-confluent-"+tc.reset, "reset-confluent-group-"+tc.reset
			resetTopic(t, n, c, topic, group)
			out := run(t, "", py, "-c", confluentResetProgram, n.KafkaAddr(), topic, group, tc.reset)
			var res resetResult
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("python printed %q: %v", out, err)
			}
			t.Logf("%s: %+v", res.Version, res)
			// librdkafka's committed() reports -2 as OFFSET_BEGINNING (-2), -1
			// and no commit as OFFSET_INVALID (-1001).
			if want := map[int32]int64{0: -2, 1: -1001, 2: -1001}; fmt.Sprint(res.Committed) != fmt.Sprint(want) {
				t.Errorf("committed() reports %v, want %v", res.Committed, want)
			}
			for p, at := range tc.where {
				p := int32(p)
				got := fmt.Sprintf("first %d, %d records, end at %d", res.First[p], res.Count[p], res.EOF[p])
				want := fmt.Sprintf("first %d, %d records, end at %d", at, end-at, end)
				if at == end {
					want = fmt.Sprintf("first 0, 0 records, end at %d", end)
				}
				if got != want {
					t.Errorf("partition %d (%s) with auto.offset.reset=%s: %s, want %s", p,
						[]string{"committed -2", "committed -1", "never committed"}[p], tc.reset, got, want)
				}
			}
		})
	}
}

// kcat's group consumer (librdkafka's, -G) starts a partition committed -2 at its
// log start though auto.offset.reset is latest, and one committed -1 at the end.
func TestClientKcatCommittedLogical(t *testing.T) {
	kcat := needKcat(t)
	n, c := startNode(t)
	const topic, group = "reset-kcat", "reset-kcat-group"
	resetTopic(t, n, c, topic, group)
	out := run(t, "", kcat, "-b", n.KafkaAddr(), "-G", group, "-X", "auto.offset.reset=latest",
		"-X", "enable.auto.commit=false", "-e", "-q", "-f", "%p %o\n", topic)
	var want strings.Builder
	for o := int64(resetLogStart); o < resetEnd; o++ {
		fmt.Fprintf(&want, "0 %d\n", o)
	}
	if out != want.String() {
		t.Errorf("kcat -G with auto.offset.reset=latest read\n%swant partition 0 (committed -2) from its log start %d, nothing of partitions 1 (committed -1) and 2 (never committed):\n%s",
			out, resetLogStart, want.String())
	}
}
