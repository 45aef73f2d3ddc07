//go:build kafkaclients

package kafka_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/qxd-io/qxd"
	"github.com/qxd-io/qxd/internal/qxdtest"
)

// javaRead is a record a reader of Check.java read, or, last, the reader's
// positions at the end ("value": "end").
type javaRead struct {
	javaRec
	Positions map[int32]int64 `json:"positions"`
}

// javaReads splits what a reader read into its records and its end positions.
func javaReads(t *testing.T, rs []javaRead) ([]javaRec, map[int32]int64) {
	t.Helper()
	if len(rs) == 0 || rs[len(rs)-1].Value != "end" {
		t.Fatalf("a reader's output %+v does not end with its positions", rs)
	}
	var out []javaRec
	for _, r := range rs[:len(rs)-1] {
		out = append(out, r.javaRec)
	}
	return out, rs[len(rs)-1].Positions
}

func values(rs []javaRec) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Value)
	}
	slices.Sort(out)
	return out
}

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// The Java transactional producer commits ten records, aborts five and commits
// five more: a read_committed reader reads the fifteen committed ones, a
// read_uncommitted one all twenty, both at the same offsets, neither any control
// record (each transaction's markers take an offset of every partition it wrote,
// so the readers end past more offsets than they read records). Then a
// consume-transform-produce transaction: a read_committed group member's records
// go to the output topic transformed and its positions to the transaction
// (sendOffsetsToTransaction); committed, KafkaConsumer.committed and the SDK's
// DescribeGroup show those positions, and an aborted transaction that sent
// further offsets leaves them as they were. The output, read committed, holds each
// transformed record once.
func TestClientJavaTransactions(t *testing.T) {
	n, c := startNode(t)
	const in, out, group = "java-txn-in", "java-txn-out", "java-txn-group"
	qxdtest.CreateTopic(t, c, in, qxd.TopicConfig{Partitions: 2})
	qxdtest.CreateTopic(t, c, out, qxd.TopicConfig{Partitions: 2})
	var res struct {
		ReadCommitted       []javaRead      `json:"readCommitted"`
		ReadUncommitted     []javaRead      `json:"readUncommitted"`
		Consumed            []javaRec       `json:"consumed"`
		SentOffsets         map[int32]int64 `json:"sentOffsets"`
		Committed           map[int32]int64 `json:"committed"`
		CommittedAfterAbort map[int32]int64 `json:"committedAfterAbort"`
		Output              []javaRead      `json:"output"`
	}
	runJava(t, &res, "txn", n.KafkaAddr(), in, out, group)

	committed, cEnd := javaReads(t, res.ReadCommitted)
	uncommitted, uEnd := javaReads(t, res.ReadUncommitted)
	wantCommitted := seq("in", 0, 15)
	slices.Sort(wantCommitted)
	if g := values(committed); !slices.Equal(g, wantCommitted) {
		t.Errorf("read_committed read %q, want %q once each", g, wantCommitted)
	}
	wantAll := slices.Sorted(slices.Values(append(seq("in", 0, 15), seq("aborted", 0, 5)...)))
	if g := values(uncommitted); !slices.Equal(g, wantAll) {
		t.Errorf("read_uncommitted read %q, want %q once each", g, wantAll)
	}
	at := map[string]javaRec{}
	perPartition := map[int32]int64{}
	for _, r := range uncommitted {
		at[r.Value] = r
		perPartition[r.Partition]++
	}
	for _, r := range committed {
		if u := at[r.Value]; u != r {
			t.Errorf("read_committed read %+v, read_uncommitted %+v", r, u)
		}
	}
	if fmt.Sprint(cEnd) != fmt.Sprint(uEnd) {
		t.Errorf("read_committed ends at %v, read_uncommitted at %v: with no transaction open they end at the same offsets", cEnd, uEnd)
	}
	for p, end := range uEnd {
		// Each partition holds a marker for each transaction that wrote to it.
		if end <= perPartition[p] {
			t.Errorf("partition %d: read_uncommitted read %d records and ends at %d: no offset was left to a transaction marker", p, perPartition[p], end)
		}
	}

	if g := values(res.Consumed); !slices.Equal(g, wantCommitted) {
		t.Errorf("the read_committed group member read %q, want %q", g, wantCommitted)
	}
	for _, r := range res.Consumed {
		if s := res.SentOffsets[r.Partition]; s <= r.Offset || s > cEnd[r.Partition] {
			t.Errorf("the member read %+v and sent offset %d for its partition, want past the record and at most the end %d", r, s, cEnd[r.Partition])
		}
	}
	if len(res.SentOffsets) != 2 || fmt.Sprint(res.Committed) != fmt.Sprint(res.SentOffsets) {
		t.Errorf("KafkaConsumer.committed after the transaction: %v, want the offsets sent to it, %v", res.Committed, res.SentOffsets)
	}
	if fmt.Sprint(res.CommittedAfterAbort) != fmt.Sprint(res.SentOffsets) {
		t.Errorf("KafkaConsumer.committed after an aborted transaction sent offsets: %v, want %v as before", res.CommittedAfterAbort, res.SentOffsets)
	}
	waitCommitted(t, c, group, in, res.SentOffsets)

	output, _ := javaReads(t, res.Output)
	wantOut := slices.Sorted(slices.Values(seq("out-in", 0, 15)))
	if g := values(output); !slices.Equal(g, wantOut) {
		t.Errorf("the output read committed: %q, want %q once each", g, wantOut)
	}
}
